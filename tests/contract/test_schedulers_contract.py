"""Every installed trial scheduler against the scheduler contract: found through its entry
point, it judges a real Ray Tune search's per-epoch reports and never lets a trial run past the
most epochs it was told of."""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.schedulers import Objective, Scheduler
from forgeline.registry import PluginRegistry, config_schema, contract_problem
from tests.contract.tune_harness import context, run

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("schedulers")]


@pytest.fixture(params=NAMES)
def scheduler_cls(request) -> type[Scheduler]:
    return REGISTRY.get("schedulers", request.param)


def make(cls: type[Scheduler]) -> Scheduler:
    config = cls.contract_config()
    return cls(cls.Config.model_validate(config) if config is not None else None)


def test_there_are_schedulers_to_certify():
    assert {"asha", "fifo"} <= set(NAMES)


def test_fulfils_the_kernel_contract(scheduler_cls):
    assert contract_problem("schedulers", scheduler_cls.name, scheduler_cls) is None
    assert scheduler_cls.description()


def test_config_schema_is_json_with_every_field_described(scheduler_cls):
    schema = json.loads(json.dumps(config_schema(scheduler_cls)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        scheduler_cls.Config.model_validate({"no_such_field": 1})


def test_judges_a_real_search(scheduler_cls, ray_local, tmp_path):
    scheduler = make(scheduler_cls).build(Objective("score", "max"), 4)
    random = REGISTRY.create("searchers", "random", {}, "searcher")
    trials = run(random.build(context(6, seed=2)), scheduler, tmp_path)
    assert len(trials) == 6
    assert all(t["error"] is None for t in trials)
    assert all(1 <= t["metrics"]["training_iteration"] <= 4 for t in trials)
