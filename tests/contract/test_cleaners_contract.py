"""Every installed cleaner, forgeline's own and third parties', against the cleaner contract.

The suite is forgeline.testing's (the one third-party packages run); this adds what is true of
forgeline's own install only.
"""

from __future__ import annotations

from forgeline.registry import PluginRegistry
from forgeline.testing.suites.cleaners import *  # noqa: F403


def test_there_are_cleaners_to_certify():
    names = {entry.name for entry in PluginRegistry().discover("cleaners")}
    assert {"normalize_text", "dedup_exact", "dedup_near"} <= names
