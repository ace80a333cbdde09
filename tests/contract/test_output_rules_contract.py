"""Every installed output rule matcher, forgeline's own and third parties', against the contract.

The suite is forgeline.testing's (the one third-party packages run); this adds what is true of
forgeline's own install only.
"""

from __future__ import annotations

from forgeline.registry import PluginRegistry
from forgeline.testing.suites.output_rules import *  # noqa: F403


def test_there_are_output_rules_to_certify():
    names = {entry.name for entry in PluginRegistry().discover("output_rules")}
    assert {"regex", "keywords", "classifier"} <= names
