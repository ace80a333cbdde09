"""forgeline's plugin-kind contract suites, shipped as a pytest plugin.

A plugin package certifies itself without a forgeline checkout: with forgeline installed, pytest
loads ``forgeline.testing.plugin`` (entry point group ``pytest11``), and one test file holding

    from forgeline.testing.suites import *  # noqa: F403

runs every contract of every kind that has a suite here. ``pytest
--forgeline-contracts=DISTRIBUTION`` (or ``forgeline_contracts = DISTRIBUTION`` in the pytest ini
options) narrows the run to the plugins of that distribution; without it every discovered plugin
is certified, which is how forgeline's own tests/contract/ uses the same suites.
"""

from __future__ import annotations

from forgeline.testing.selection import (
    PLUGIN_FIXTURE_SUFFIX,
    contract_instance,
    plugins_to_certify,
)

__all__ = ["PLUGIN_FIXTURE_SUFFIX", "contract_instance", "plugins_to_certify"]
