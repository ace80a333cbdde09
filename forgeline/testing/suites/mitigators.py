"""The mitigator contract, over every mitigator to certify (fixture ``mitigators_plugin``): a
documented config that refuses unknown fields; on a seeded problem where two groups have
different base rates, one 0/1 decision per row, the same decisions for the same seed, a smaller
demographic parity difference under a demographic_parity constraint; and a precise error for
rows it cannot learn from.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from forgeline.contracts.mitigators import FairnessRows, MitigationResult, Mitigator
from forgeline.errors import InvalidArgument
from forgeline.registry import config_schema, contract_problem

__all__ = [
    "test_it_fulfils_the_contract_and_documents_its_config",
    "test_it_decides_every_row_reproducibly_and_closes_the_parity_gap",
    "test_it_refuses_rows_it_cannot_learn_from",
]


def problem(n: int = 2000, seed: int = 0) -> FairnessRows:
    """Group "a" is positive 60% of the time, group "b" 25%; three features and a score follow
    the label (not the group), so an accurate classifier selects "a" far more often."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.5, "a", "b")
    labels = (rng.random(n) < np.where(groups == "a", 0.6, 0.25)).astype(np.int64)
    features = labels[:, None] * 1.2 + rng.normal(0.0, 1.0, (n, 3))
    scores = 1.0 / (1.0 + np.exp(-(features.sum(axis=1) - 1.8)))
    return FairnessRows(labels=labels, groups=groups, scores=scores, features=features)


def selection_gap(decisions: np.ndarray, groups: np.ndarray) -> float:
    rates = [decisions[groups == g].mean() for g in ("a", "b")]
    return abs(rates[0] - rates[1])


def create(cls: type[Mitigator], **config: object) -> Mitigator:
    return cls(cls.Config.model_validate({**(cls.contract_config() or {}), **config}))


def test_it_fulfils_the_contract_and_documents_its_config(mitigators_plugin):
    cls = mitigators_plugin
    assert contract_problem("mitigators", cls.name, cls) is None
    schema = config_schema(cls)
    assert cls.description() and schema["type"] == "object"
    assert all(p.get("description") for p in schema.get("properties", {}).values())
    with pytest.raises(ValidationError, match="no_such_field"):
        cls.Config.model_validate({"no_such_field": 1})


def test_it_decides_every_row_reproducibly_and_closes_the_parity_gap(mitigators_plugin):
    fit, apply = problem(seed=0), problem(seed=1)
    mitigator = create(mitigators_plugin)
    if "constraint" in mitigator.Config.model_fields:
        mitigator = create(mitigators_plugin, constraint="demographic_parity")
    result = mitigator.mitigate(fit, apply, seed=7)
    assert isinstance(result, MitigationResult)
    decisions = np.asarray(result.predictions)
    assert decisions.shape == (len(apply),) and set(np.unique(decisions)) <= {0, 1}
    again = create(mitigators_plugin, **mitigator.config.model_dump()).mitigate(fit, apply, seed=7)
    assert np.array_equal(np.asarray(again.predictions), decisions)
    if result.baseline is not None:
        before = np.asarray(result.baseline)
        assert before.shape == (len(apply),) and set(np.unique(before)) <= {0, 1}
    else:
        before = (apply.scores >= 0.5).astype(int)
    gap_before = selection_gap(before, apply.groups)
    gap_after = selection_gap(decisions, apply.groups)
    assert gap_before > 0.2  # the problem is unfair to start with
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)
    assert isinstance(result.details, dict)


def test_it_refuses_rows_it_cannot_learn_from(mitigators_plugin):
    mitigator = create(mitigators_plugin)
    rows = problem(200)
    one_group = FairnessRows(rows.labels, np.full(200, "a"), rows.scores, rows.features)
    with pytest.raises(InvalidArgument, match="fit.groups"):
        mitigator.mitigate(one_group, rows, seed=0)
    not_binary = FairnessRows(rows.labels * 2, rows.groups, rows.scores, rows.features)
    with pytest.raises(InvalidArgument, match="fit.labels"):
        mitigator.mitigate(not_binary, rows, seed=0)
    needs = FairnessRows(rows.labels, rows.groups)  # neither scores nor features
    with pytest.raises(InvalidArgument, match=f"fit.{mitigator.needs}"):
        mitigator.mitigate(needs, rows, seed=0)
