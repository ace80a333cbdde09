"""Which plugins a contract run certifies: every discovered plugin of a kind, or one
distribution's."""

from __future__ import annotations

from forgeline.contracts.base import Plugin
from forgeline.registry import PluginEntry, PluginRegistry

# A suite's test asks for fixture ``<kind>_plugin`` (e.g. ``cleaners_plugin``); the pytest plugin
# parametrizes it with the plugin classes to certify, one test id per plugin name.
PLUGIN_FIXTURE_SUFFIX = "_plugin"


def plugins_to_certify(
    registry: PluginRegistry, kind: str, distribution: str | None = None
) -> list[PluginEntry]:
    """The discovered entry points of ``kind``, only ``distribution``'s when one is named."""
    return [
        entry
        for entry in registry.discover(kind)
        if distribution is None or entry.distribution == distribution
    ]


def contract_instance(cls: type[Plugin]) -> Plugin:
    """``cls`` built as the contract tests it: with the config its ``contract_config`` returns
    (for a plugin whose defaults cannot run), else with its defaults."""
    config = cls.contract_config()
    return cls(cls.Config.model_validate(config) if config is not None else None)
