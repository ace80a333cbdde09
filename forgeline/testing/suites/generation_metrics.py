"""The generation_metrics contract, over every metric to certify (fixture
``generation_metrics_plugin``).

Running this suite certifies a metric: it is found through its entry point, exactly as the
evaluation finds it; identical texts score 1 and different ones less, in English and in Chinese;
every value is in 0..1 and every per-example list has one value per prediction; and lists of
different lengths, or empty ones, are refused naming the field.
"""

from __future__ import annotations

import json
import math

import pytest

from forgeline.contracts.generation_metrics import GenerationScores
from forgeline.errors import InvalidArgument
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_identical_texts_score_one_and_different_ones_less",
    "test_every_value_is_in_0_to_1_with_one_per_example_value_per_prediction",
    "test_refuses_lists_of_different_lengths_and_empty_ones",
]

ENGLISH = [
    "The appeal was dismissed because the tenant had not relinquished the flat.",
    "The court held that the assignment of a tenancy differs from a surrender of it.",
    "No costs were awarded to either party in the proceedings before the high court.",
]
CHINESE = [
    "本文提出了一种基于平方和方法的飞行器姿态镇定控制器设计方法。",
    "水运工程项目全过程管理的有效性探索与控制重点分析。",
    "仿真结果表明该控制器具有较快的响应速度和较好的收敛性。",
]
OTHER = [
    "Heavy rain is expected across the northern hills by Friday evening.",
    "天气晴朗，适合户外散步和野餐活动。",
    "",
]


def check_scores(scores: GenerationScores, n: int) -> None:
    """Every value in 0..1; every per-example list one value per prediction, under a key that
    also has a corpus value."""
    assert scores.corpus, "a metric reports at least one corpus value"
    for key, value in scores.corpus.items():
        assert isinstance(key, str) and key, key
        assert math.isfinite(value) and 0.0 <= value <= 1.0, f"{key} = {value}: not in 0..1"
    for key, values in scores.per_example.items():
        assert key in scores.corpus, f"per-example {key!r} has no corpus value"
        assert len(values) == n, f"{key}: {len(values)} per-example values for {n} predictions"
        for value in values:
            assert math.isfinite(value) and 0.0 <= value <= 1.0, f"{key} example = {value}"
    json.dumps(scores.details)  # reported as data


def test_fulfils_the_kernel_contract(generation_metrics_plugin):
    cls = generation_metrics_plugin
    assert contract_problem("generation_metrics", cls.name, cls) is None
    assert cls.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(generation_metrics_plugin):
    schema = json.loads(json.dumps(config_schema(generation_metrics_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        generation_metrics_plugin.Config.model_validate({"no_such_field": 1})


@pytest.mark.parametrize("texts", [ENGLISH, CHINESE], ids=["english", "chinese"])
def test_identical_texts_score_one_and_different_ones_less(generation_metrics_plugin, texts):
    metric = contract_instance(generation_metrics_plugin)
    same = metric.score(list(texts), list(texts))
    check_scores(same, len(texts))
    for key, value in same.corpus.items():
        assert value == pytest.approx(1.0), f"{key} of identical texts is {value}, not 1"
    for key, values in same.per_example.items():
        assert values == pytest.approx([1.0] * len(texts)), key
    different = metric.score([*texts[1:], texts[0]], list(texts))
    check_scores(different, len(texts))
    for key, value in different.corpus.items():
        assert value < 1.0, f"{key} of different texts is {value}"


def test_every_value_is_in_0_to_1_with_one_per_example_value_per_prediction(
    generation_metrics_plugin,
):
    metric = contract_instance(generation_metrics_plugin)
    references = [*ENGLISH, *CHINESE, *ENGLISH[:2], CHINESE[0]]
    halves = [r[: len(r) // 2] for r in references[:6]]
    predictions = [*halves, *OTHER]
    check_scores(metric.score(predictions, references), len(predictions))


def test_refuses_lists_of_different_lengths_and_empty_ones(generation_metrics_plugin):
    metric = contract_instance(generation_metrics_plugin)
    with pytest.raises(InvalidArgument) as mismatch:
        metric.score(ENGLISH[:2], ENGLISH)
    assert "2 predictions but 3 references" in mismatch.value.message
    assert [v.field for v in mismatch.value.violations] == ["references"]
    with pytest.raises(InvalidArgument) as empty:
        metric.score([], [])
    assert [v.field for v in empty.value.violations] == ["predictions"]
