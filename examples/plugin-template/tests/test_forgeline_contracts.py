"""forgeline's contract suites over this distribution's plugins (pyproject: forgeline_contracts)."""

from forgeline.testing.suites import *  # noqa: F403
