"""The replay sampler contract, over every sampler to certify (fixture ``samplers_plugin``).

A sampler gets a pool of embedded, labelled, timestamped samples (imbalanced classes) and must
return ``min(k, len(pool))`` distinct positions in the pool, as Python ints, for every k; the
same seed must give the same positions, and the seed must matter (for a sampler that draws at
random by default). An empty pool gives nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgeline.contracts.samplers import ReplayPool
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_returns_min_k_n_distinct_positions",
    "test_a_negative_k_returns_nothing",
    "test_the_same_seed_gives_the_same_positions",
    "test_the_seed_matters",
    "test_an_empty_pool_gives_nothing",
    "test_a_pool_of_one",
    "test_a_pool_of_duplicates_still_gives_distinct_positions",
]

SIZE = 200


def pool(size: int = SIZE, seed: int = 0) -> ReplayPool:
    """Three imbalanced classes (60%, 30%, 10%) of 8-dim unit vectors, added one a second."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["cat", "dog", "eel"], size=size, p=[0.6, 0.3, 0.1]).tolist()
    vectors = rng.normal(size=(size, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ReplayPool(labels, vectors, [1_700_000_000.0 + i for i in range(size)])


def test_fulfils_the_kernel_contract(samplers_plugin):
    assert contract_problem("samplers", samplers_plugin.name, samplers_plugin) is None
    assert samplers_plugin.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(samplers_plugin):
    schema = json.loads(json.dumps(config_schema(samplers_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        samplers_plugin.Config.model_validate({"no_such_field": 1})


@pytest.mark.parametrize("k", [0, 1, 17, SIZE - 1, SIZE, 500])
def test_returns_min_k_n_distinct_positions(samplers_plugin, k):
    result = contract_instance(samplers_plugin).sample(pool(), k, seed=7)
    assert isinstance(result, list)
    assert all(type(p) is int for p in result), [type(p) for p in result]
    assert len(result) == min(k, SIZE)
    assert len(set(result)) == len(result), "positions repeat"
    assert all(0 <= p < SIZE for p in result)
    if k >= SIZE:
        assert sorted(result) == list(range(SIZE))


def test_a_negative_k_returns_nothing(samplers_plugin):
    assert contract_instance(samplers_plugin).sample(pool(), -3, seed=0) == []


@pytest.mark.parametrize("k", [1, 17, SIZE])
def test_the_same_seed_gives_the_same_positions(samplers_plugin, k):
    data = pool()
    first = contract_instance(samplers_plugin).sample(data, k, seed=11)
    assert contract_instance(samplers_plugin).sample(data, k, seed=11) == first  # a fresh instance
    assert contract_instance(samplers_plugin).sample(pool(), k, seed=11) == first  # an equal pool


def test_the_seed_matters(samplers_plugin):
    data = pool()
    sampler = contract_instance(samplers_plugin)
    first = sampler.sample(data, 17, seed=0)
    others = [sampler.sample(data, 17, seed=s) for s in (1, 2, 3, 4, 5)]
    assert any(sorted(o) != sorted(first) for o in others), "every seed chose the same samples"


def test_an_empty_pool_gives_nothing(samplers_plugin):
    empty = ReplayPool([], np.zeros((0, 8), dtype=np.float32), [])
    sampler = contract_instance(samplers_plugin)
    assert sampler.sample(empty, 0, seed=0) == []
    assert sampler.sample(empty, 5, seed=0) == []


def test_a_pool_of_one(samplers_plugin):
    one = pool(1)
    assert contract_instance(samplers_plugin).sample(one, 1, seed=0) == [0]
    assert contract_instance(samplers_plugin).sample(one, 3, seed=0) == [0]


def test_a_pool_of_duplicates_still_gives_distinct_positions(samplers_plugin):
    """Identical embeddings, labels and timestamps: nothing to tell the samples apart by."""
    vectors = np.tile(pool(1).vectors, (30, 1))
    same = ReplayPool(["cat"] * 30, vectors, [5.0] * 30)
    result = contract_instance(samplers_plugin).sample(same, 12, seed=3)
    assert len(result) == 12 and len(set(result)) == 12
    assert all(0 <= p < 30 for p in result)
