"""The searcher contract, over every searcher to certify (fixture ``searchers_plugin``).

Running this suite certifies a searcher: it is found through its entry point, its plan runs a
real Ray Tune search over a space of every distribution kind, every value it proposes lies in
the space, and it runs the number of trials it says it will. A multi-objective searcher must also
run with two objectives.
"""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.searchers import Objective
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance
from forgeline.testing.tune import CONCURRENT, SPACE, context, most_at_once, run

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_runs_a_real_search_inside_its_space",
    "test_a_multi_objective_searcher_runs_two_objectives",
]


def test_fulfils_the_kernel_contract(searchers_plugin):
    assert contract_problem("searchers", searchers_plugin.name, searchers_plugin) is None
    assert searchers_plugin.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(searchers_plugin):
    schema = json.loads(json.dumps(config_schema(searchers_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        searchers_plugin.Config.model_validate({"no_such_field": 1})


def in_space(config: dict) -> bool:
    return (
        -1.0 <= config["x"] <= 1.0
        and 1e-4 <= config["lr"] <= 1e-1
        and config["n"] in (1, 2, 3, 4)
        and config["kind"] in ("a", "b")
    )


def test_runs_a_real_search_inside_its_space(searchers_plugin, ray_local, tmp_path):
    searcher = contract_instance(searchers_plugin)
    ctx = context(0 if searchers_plugin.name == "grid" else 6, seed=3)
    searcher.check(ctx)
    expected = searcher.trials(ctx)
    assert expected >= 1
    trials = run(searcher.build(ctx), None, tmp_path)
    assert len(trials) == expected
    assert all(t["error"] is None for t in trials), [t["error"] for t in trials]
    assert all(set(t["config"]) == {p.name for p in SPACE} for t in trials)
    assert all(in_space(t["config"]) for t in trials), [t["config"] for t in trials]
    assert most_at_once(trials) <= CONCURRENT


def test_a_multi_objective_searcher_runs_two_objectives(searchers_plugin, ray_local, tmp_path):
    if not searchers_plugin.multi_objective:
        pytest.skip(f"{searchers_plugin.name} optimises one objective")
    searcher = contract_instance(searchers_plugin)
    ctx = context(4, (Objective("score", "max"), Objective("size", "min")), seed=1)
    searcher.check(ctx)
    trials = run(searcher.build(ctx), None, tmp_path)
    assert len(trials) == searcher.trials(ctx)
    assert all(t["error"] is None and in_space(t["config"]) for t in trials)
