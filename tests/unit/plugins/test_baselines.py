"""The tfidf_logreg baseline: it fits what is separable, its config refuses nonsense naming the
field, and the model it stores (JSON + safetensors, no pickle) predicts what the fitted one did."""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.baselines import BaselineContext
from forgeline.errors import InvalidArgument
from forgeline.plugins.baselines.tfidf import (
    FORMAT,
    SETTINGS_FILE,
    WEIGHTS_FILE,
    TfidfLogreg,
    load,
)
from forgeline.registry import PluginRegistry

# No character is shared between the two classes' phrases: separable by construction.
GOOD = ["好吃", "美味", "满意", "新鲜", "快速"]
BAD = ["难受", "失望", "变质", "太慢", "糟糕"]
FILLERS = ["这家店", "外卖", "今天的", "总体来说", "老板"]
UNSEEN_FILLERS = ["快递", "包装", "这次"]


def rows(fillers: list[str]) -> tuple[list[str], list[str]]:
    """Every filler before every positive and negative phrase."""
    texts, labels = [], []
    for filler in fillers:
        for phrases, label in ((GOOD, "pos"), (BAD, "neg")):
            for phrase in phrases:
                texts.append(f"{filler}{phrase}")
                labels.append(label)
    return texts, labels


def test_fits_a_separable_dataset_perfectly(tmp_path):
    train_x, train_y = rows(FILLERS)
    test_x, test_y = rows(UNSEEN_FILLERS)
    result = TfidfLogreg().fit_predict(
        train_x, train_y, test_x, BaselineContext(labels=("neg", "pos"), output_dir=tmp_path)
    )
    assert result.predictions == test_y  # accuracy 1.0
    assert result.seconds > 0
    assert result.model_format == FORMAT
    assert result.details["num_features"] > 0


def test_the_stored_model_is_json_and_safetensors_and_predicts_the_same(tmp_path):
    train_x, train_y = rows(FILLERS)
    test_x, _ = rows(UNSEEN_FILLERS)
    test_x += ["完全没见过的句子", ""]  # unseen n-grams and an empty text
    result = TfidfLogreg(TfidfLogreg.Config(C=0.5)).fit_predict(
        train_x, train_y, test_x, BaselineContext(labels=("neg", "pos"), output_dir=tmp_path)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SETTINGS_FILE, WEIGHTS_FILE])
    document = json.loads((tmp_path / SETTINGS_FILE).read_text("utf-8"))
    assert document["format"] == FORMAT and document["classes"] == ["neg", "pos"]
    assert len(document["terms"]) == result.details["num_features"]
    assert set(result.predictions) == {"neg", "pos"}
    model = load(tmp_path)
    assert model.labels == ["neg", "pos"]
    assert model.predict(test_x) == result.predictions


def test_nothing_is_stored_without_an_output_dir():
    train_x, train_y = rows(FILLERS[:2])
    result = TfidfLogreg().fit_predict(
        train_x, train_y, train_x[:4], BaselineContext(labels=("neg", "pos"))
    )
    assert result.model_format == "" and len(result.predictions) == 4


def test_word_ngrams_and_three_classes():
    texts = ["red apple", "red cherry", "green leaf", "green grass", "blue sky", "blue sea"] * 4
    labels = ["red", "red", "green", "green", "blue", "blue"] * 4
    config = TfidfLogreg.Config(analyzer="word", ngram_min=1, ngram_max=2)
    result = TfidfLogreg(config).fit_predict(
        texts,
        labels,
        ["a red rose", "blue water", "green tea"],
        BaselineContext(labels=("blue", "green", "red")),
    )
    assert result.predictions == ["red", "blue", "green"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ngram_min": 3, "ngram_max": 2}, "baseline.config.ngram_max"),
        ({"C": 0}, "baseline.config.C"),
        ({"C": -1.5}, "baseline.config.C"),
        ({"analyzer": "bpe"}, "baseline.config.analyzer"),
        ({"max_features": 0}, "baseline.config.max_features"),
        ({"ngram_min": 0}, "baseline.config.ngram_min"),
        ({"penalty": "l1"}, "baseline.config.penalty"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(config, field):
    with pytest.raises(InvalidArgument) as caught:
        PluginRegistry().create("baselines", "tfidf_logreg", config, "baseline")
    assert field in [v.field for v in caught.value.violations], caught.value.message


def test_an_unknown_baseline_names_the_field_and_lists_the_known_ones():
    with pytest.raises(InvalidArgument) as caught:
        PluginRegistry().create("baselines", "svm_rbf", {}, "baseline")
    assert "baseline.name" in caught.value.message
    assert "tfidf_logreg" in caught.value.message
