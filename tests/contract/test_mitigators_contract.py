"""Every installed mitigator, forgeline's own and third parties', against the contract.

The suite is forgeline.testing's (the one third-party packages run); this adds what is true of
forgeline's own install only.
"""

from __future__ import annotations

from forgeline.registry import PluginRegistry
from forgeline.testing.suites.mitigators import *  # noqa: F403


def test_forgelines_own_mitigators_are_installed():
    names = {entry.name for entry in PluginRegistry().discover("mitigators")}
    assert {"threshold_optimizer", "exponentiated_gradient"} <= names
