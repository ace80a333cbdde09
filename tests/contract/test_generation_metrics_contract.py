"""Every installed generation metric, forgeline's own and third parties', against the contract.

The suite is forgeline.testing's (the one third-party packages run); this adds what is true of
forgeline's own install only.
"""

from __future__ import annotations

from forgeline.registry import PluginRegistry
from forgeline.testing.suites.generation_metrics import *  # noqa: F403


def test_there_are_generation_metrics_to_certify():
    names = {entry.name for entry in PluginRegistry().discover("generation_metrics")}
    assert {"rouge", "bleu", "chrf", "exact_match"} <= names
