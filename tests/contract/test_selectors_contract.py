"""Every installed selector, forgeline's own and third parties', against the contract: ascending,
distinct, in-range positions for any scored rows, an empty answer for no rows, and a precise
error for probabilities that do not match the rows."""

from __future__ import annotations

import numpy as np
import pytest

from forgeline.contracts.selectors import ScoredRows
from forgeline.errors import InvalidArgument
from forgeline.registry import PluginRegistry, config_schema, contract_problem

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("selectors")]


def scored(n: int, classes: int = 3, seed: int = 0) -> ScoredRows:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return ScoredRows(p, rng.integers(0, classes, n).tolist())


@pytest.fixture(params=NAMES)
def selector(request):
    cls = REGISTRY.get("selectors", request.param)
    return cls(cls.Config.model_validate(cls.contract_config() or {}))


@pytest.mark.parametrize("name", NAMES)
def test_it_fulfils_the_contract_and_documents_its_config(name):
    cls = REGISTRY.get("selectors", name)
    assert contract_problem("selectors", name, cls) is None
    assert cls.description() and config_schema(cls)["type"] == "object"


def test_it_returns_ascending_distinct_positions(selector):
    rows = scored(300)
    kept = selector.select(rows)
    assert kept == sorted(set(kept)) and all(isinstance(i, int) and 0 <= i < 300 for i in kept)
    assert selector.select(ScoredRows(np.zeros((0, 3)), [])) == []


def test_it_refuses_probabilities_that_do_not_match_the_rows(selector):
    with pytest.raises(InvalidArgument, match="rows.probabilities"):
        selector.select(ScoredRows(np.ones((3, 2)) / 2, [0, 1]))
