"""The EDA augmenters: seeded, only changed rows, other columns copied, CJK-aware."""

from __future__ import annotations

import pyarrow as pa
import pytest

from forgeline.contracts.augmenters import AugmentContext
from forgeline.plugins.augmenters.eda import (
    RandomDeletion,
    RandomInsertion,
    RandomSwap,
    SynonymReplace,
)

CTX = AugmentContext(text_column="text", label_column="label", seed=3)


def table(*texts: str | None) -> pa.Table:
    return pa.table(
        {
            "text": pa.array(texts, type=pa.string()),
            "label": list(range(len(texts))),
            "shop": [f"shop {i}" for i in range(len(texts))],
        }
    )


@pytest.mark.parametrize("cls", [SynonymReplace, RandomSwap, RandomInsertion, RandomDeletion])
def test_same_seed_same_rows_and_other_columns_copied(cls):
    source = table(
        "the food was good and the delivery was quick",
        "a funny movie with a beautiful story and great music",
        "送餐很快，味道好吃，分量一般",
    )
    augmenter = cls(cls.Config(alpha=0.3, num_aug=3))
    first = augmenter.augment(source, CTX)
    assert first.equals(cls(cls.Config(alpha=0.3, num_aug=3)).augment(source, CTX))
    assert first.num_rows > 0
    originals = source.to_pylist()
    for row in first.to_pylist():
        original = originals[row["label"]]
        assert row["shop"] == original["shop"]
        assert row["text"] != original["text"]


def test_synonym_replace_keeps_punctuation_and_capitals_and_takes_config_words():
    config = SynonymReplace.Config(alpha=1.0, synonyms={"noodles": ["ramen"]})
    out = SynonymReplace(config).augment(table("Good noodles!"), CTX)
    assert out.column("text").to_pylist()[0] in {
        f"{good} ramen!" for good in ("Great", "Fine", "Nice", "Decent")
    }


def test_rows_without_a_possible_edit_are_not_emitted():
    source = table("zzz qqq", "word", "", None)
    assert SynonymReplace().augment(source, CTX).num_rows == 0
    assert RandomInsertion().augment(source, CTX).num_rows == 0
    assert RandomSwap().augment(source, CTX).column("label").to_pylist() == [0]
    assert RandomDeletion(RandomDeletion.Config(alpha=0.9)).augment(source, CTX).num_rows <= 1


def test_chinese_is_cut_with_jieba_and_joined_without_spaces():
    out = SynonymReplace(SynonymReplace.Config(alpha=1.0)).augment(table("送餐很快，好吃"), CTX)
    text = out.column("text")[0].as_py()
    assert " " not in text and "，" in text
    assert text.split("，")[0] in {
        "送餐迅速",
        "送餐快速",
        "配送很快",
        "送货很快",
        "配送迅速",
        "配送快速",
        "送货迅速",
        "送货快速",
    }
    assert text.split("，")[1] in {"美味", "可口"}


def test_random_deletion_always_leaves_a_word():
    out = RandomDeletion(RandomDeletion.Config(alpha=1.0, num_aug=5)).augment(
        table("one two three four"), CTX
    )
    for text in out.column("text").to_pylist():
        assert len(text.split()) == 1


def test_random_insertion_adds_synonyms_of_the_row():
    out = RandomInsertion(RandomInsertion.Config(alpha=0.5)).augment(table("good food here"), CTX)
    added = set(out.column("text")[0].as_py().split()) - {"good", "food", "here"}
    assert added and added <= {"great", "fine", "nice", "decent", "meal", "dish"}


def test_max_rows_caps_new_rows_and_seed_changes_the_choice():
    source = table(*[f"the food was good number {i}" for i in range(50)])
    config = RandomSwap.Config(max_rows=5, num_aug=2)
    first = RandomSwap(config).augment(source, CTX)
    assert first.num_rows == 5
    assert first.column("label").to_pylist() == sorted(first.column("label").to_pylist())
    other = RandomSwap(config).augment(source, AugmentContext("text", "label", seed=4))
    assert first.column("label").to_pylist() != other.column("label").to_pylist()
