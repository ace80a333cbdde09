"""The selector contract, over every selector to certify (fixture ``selectors_plugin``):
ascending, distinct, in-range positions for any scored rows, an empty answer for no rows, and a
precise error for probabilities that do not match the rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from forgeline.contracts.selectors import ScoredRows
from forgeline.errors import InvalidArgument
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_it_fulfils_the_contract_and_documents_its_config",
    "test_it_returns_ascending_distinct_positions",
    "test_it_refuses_probabilities_that_do_not_match_the_rows",
]


def scored(n: int, classes: int = 3, seed: int = 0) -> ScoredRows:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return ScoredRows(p, rng.integers(0, classes, n).tolist())


def test_it_fulfils_the_contract_and_documents_its_config(selectors_plugin):
    cls = selectors_plugin
    assert contract_problem("selectors", cls.name, cls) is None
    assert cls.description() and config_schema(cls)["type"] == "object"


def test_it_returns_ascending_distinct_positions(selectors_plugin):
    selector = contract_instance(selectors_plugin)
    rows = scored(300)
    kept = selector.select(rows)
    assert kept == sorted(set(kept)) and all(isinstance(i, int) and 0 <= i < 300 for i in kept)
    assert selector.select(ScoredRows(np.zeros((0, 3)), [])) == []


def test_it_refuses_probabilities_that_do_not_match_the_rows(selectors_plugin):
    with pytest.raises(InvalidArgument, match="rows.probabilities"):
        contract_instance(selectors_plugin).select(ScoredRows(np.ones((3, 2)) / 2, [0, 1]))
