"""The trial scheduler contract, over every scheduler to certify (fixture ``schedulers_plugin``):
found through its entry point, it judges a real Ray Tune search's per-epoch reports and never
lets a trial run past the most epochs it was told of.
"""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.schedulers import Objective
from forgeline.registry import PluginRegistry, config_schema, contract_problem
from forgeline.testing.selection import contract_instance
from forgeline.testing.tune import context, run

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_judges_a_real_search",
]


def test_fulfils_the_kernel_contract(schedulers_plugin):
    assert contract_problem("schedulers", schedulers_plugin.name, schedulers_plugin) is None
    assert schedulers_plugin.description()


def test_config_schema_is_json_with_every_field_described(schedulers_plugin):
    schema = json.loads(json.dumps(config_schema(schedulers_plugin)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        schedulers_plugin.Config.model_validate({"no_such_field": 1})


def test_judges_a_real_search(schedulers_plugin, ray_local, tmp_path):
    scheduler = contract_instance(schedulers_plugin).build(Objective("score", "max"), 4)
    random = PluginRegistry().create("searchers", "random", {}, "searcher")
    trials = run(random.build(context(6, seed=2)), scheduler, tmp_path)
    assert len(trials) == 6
    assert all(t["error"] is None for t in trials)
    assert all(1 <= t["metrics"]["training_iteration"] <= 4 for t in trials)
