"""The built-in cleaners: what each one promises beyond the common contract."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from forgeline.contracts.cleaners import CleanContext
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.plugins.cleaners.balance import BalanceLabels
from forgeline.plugins.cleaners.dedup import ExactDedup, NearDedup
from forgeline.plugins.cleaners.length import LengthFilter
from forgeline.plugins.cleaners.normalize import (
    NFKC_STABLE_RANGES,
    NormalizeText,
    normalize_strings,
)
from forgeline.plugins.cleaners.outliers import ZScoreOutliers
from forgeline.plugins.cleaners.segment import SegmentChinese

CTX = CleanContext(text_column="text", label_column="label", seed=0)


def texts(*values: str | None, **columns) -> pa.Table:
    return pa.table({"text": pa.array(values, type=pa.string()), **columns})


# --- normalize_text ------------------------------------------------------------------------------


def test_normalize_chinese_full_width_and_spaces():
    result = NormalizeText().clean(texts("ＡＢＣ，你好　世界！！"), CTX)
    assert result.table.column("text").to_pylist() == ["abc,你好 世界!!"]
    assert result.examples == [("ＡＢＣ，你好　世界！！", "normalized")]
    assert result.details == {"rows_changed": 1}


def test_normalize_options_nulls_and_empty_rows():
    table = texts("  Hello,   WORLD!\t", None, "   ", "ok", label=[1, 0, 0, 1])
    keep_case = NormalizeText(NormalizeText.Config(lowercase=False, punctuation="remove"))
    result = keep_case.clean(table, CTX)
    assert result.table.column("text").to_pylist() == ["Hello WORLD", None, "", "ok"]
    assert result.table.column("label").to_pylist() == [1, 0, 0, 1]
    assert result.details == {"rows_changed": 2}


def test_normalize_a_named_column_of_large_strings():
    table = pa.table(
        {"text": ["Keep  Me"], "title": pa.array(["ＴＩＴＬＥ  One"], type=pa.large_string())}
    )
    result = NormalizeText(NormalizeText.Config(column="title")).clean(table, CTX)
    assert result.table.column("title").to_pylist() == ["title one"]
    assert result.table.schema.field("title").type == pa.large_string()
    assert result.table.column("text").to_pylist() == ["Keep  Me"]


def test_normalize_names_the_bad_column():
    with pytest.raises(InvalidArgument) as exc:
        NormalizeText(NormalizeText.Config(column="body")).clean(texts("a"), CTX)
    assert exc.value.violations[0].field == "config.column"
    assert "column 'body' not in dataset: columns are text" in exc.value.message
    with pytest.raises(InvalidArgument, match="holds int64, not text"):
        NormalizeText(NormalizeText.Config(column="n")).clean(texts("a", n=[1]), CTX)


def test_normalize_matches_python_unicodedata_on_tricky_text():
    samples = [
        "ﬁne ｶﾀｶﾅ ①② x² Ⅻ ㎏",  # ligature, half-width kana, circled, super, roman, squared
        "cafe\u0301 Cafe\u0301",  # combining accent composes
        "\u1100\u1161\u11a8 한국어",  # conjoining jamo compose to a syllable
        "tab\there\nnew\u2028line\u0085nel\u00a0nbsp\u3000ideo",
        "\u2003em\u2002en space\ufeff",
        "“Quotes” — dash… ÀÉÎÕÜ ß",
        "豈 更 車",  # CJK compatibility ideographs
        "plain ascii already fine",
    ]
    expected = [
        re.sub(r"\s+", " ", unicodedata.normalize("NFKC", s).lower()).strip() for s in samples
    ]
    assert normalize_strings(pa.array(samples)).to_pylist() == expected


def test_nfkc_fast_path_ranges_are_really_stable():
    members = {c for lo, hi in NFKC_STABLE_RANGES for c in range(lo, hi + 1)}
    for code in members:
        char = chr(code)
        assert unicodedata.normalize("NFKC", char) == char, hex(code)
        assert unicodedata.combining(char) == 0, hex(code)
    # and no two of them compose into something else
    for code in range(0x110000):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            assert not all(int(p, 16) in members for p in parts), hex(code)


def test_normalize_many_chunks_in_threads_keeps_order():
    rows = [f"Row  {i} ＦＵＬＬ" for i in range(300_000)]
    chunked = pa.table({"text": pa.chunked_array([rows[:1000], rows[1000:]])})
    result = NormalizeText().clean(chunked, CTX).table.column("text")
    assert result.to_pylist() == [f"row {i} full" for i in range(300_000)]


# --- dedup_exact ---------------------------------------------------------------------------------


def test_exact_dedup_keeps_the_first_of_each_normalized_text():
    table = texts(
        "Hello  World",
        "other",
        "hello world",
        "ＨＥＬＬＯ world",
        None,
        None,
        "other",
        label=[0, 1, 2, 3, 4, 5, 6],
    )
    result = ExactDedup().clean(table, CTX)
    assert result.table.column("label").to_pylist() == [0, 1, 4]
    assert result.table.column("text").to_pylist() == ["Hello  World", "other", None]
    assert result.examples[:2] == [
        ("hello world", "duplicate of row 0"),
        ("ＨＥＬＬＯ world", "duplicate of row 0"),
    ]
    assert ("other", "duplicate of row 1") in result.examples
    assert result.details == {"duplicates": 4, "key": ["text"]}


def test_exact_dedup_on_several_columns():
    table = texts("a", "A", "a", "b", label=[1, 2, 1, 1])
    result = ExactDedup(ExactDedup.Config(columns=["text", "label"])).clean(table, CTX)
    assert result.table.column("label").to_pylist() == [1, 2, 1]
    assert result.examples == [("a", "duplicate of row 0")]
    with pytest.raises(InvalidArgument) as exc:
        ExactDedup(ExactDedup.Config(columns=["text", "shop"])).clean(table, CTX)
    assert exc.value.violations[0].field == "config.columns[1]"


def test_exact_dedup_across_chunks_matches_pandas():
    rng = np.random.default_rng(0)
    values = [f"text {n}" for n in rng.integers(0, 5000, size=40_000)]
    table = pa.table({"text": pa.chunked_array([values[:7], values[7:20_000], values[20_000:]])})
    kept = ExactDedup().clean(table, CTX).table.column("text").to_pylist()
    assert kept == list(dict.fromkeys(values))


# --- dedup_near ----------------------------------------------------------------------------------


def test_near_dedup_catches_a_one_character_edit():
    base = (
        "the noodles arrived hot and fresh, the driver was very friendly today and the "
        "portion was bigger than last time"
    )
    table = texts(
        base,
        "completely different review about cold soup and slow delivery",
        base.replace("hot", "hut"),
        "送餐很快，味道好吃，分量很足，下次还会再点这家的牛肉面",
        "送餐很快，味道好吃，分量很足，下次还会再点这家的牛肉饭",
        label=[0, 1, 2, 3, 4],
    )
    result = NearDedup().clean(table, CTX)
    assert result.table.column("label").to_pylist() == [0, 1, 3]
    (first_text, first_reason), (second_text, second_reason) = result.examples
    assert first_text == base.replace("hot", "hut")
    assert re.fullmatch(r"near-duplicate of row 0 \(jaccard≈0\.\d\d\)", first_reason)
    assert second_reason.startswith("near-duplicate of row 3")
    assert result.details == {"near_duplicates": 2, "threshold": 0.85}
    strict = NearDedup(NearDedup.Config(threshold=0.95)).clean(table, CTX)
    assert strict.table.num_rows == 5


def test_near_dedup_threshold_needs_enough_permutations():
    with pytest.raises(ValidationError, match="lower the threshold or raise num_perm"):
        NearDedup.Config(threshold=0.99, num_perm=128)
    assert NearDedup.Config(threshold=0.99, num_perm=1024).threshold == 0.99


# --- zscore_outliers -----------------------------------------------------------------------------


def test_zscore_drops_a_planted_numeric_outlier():
    rng = np.random.default_rng(1)
    prices = list(rng.normal(20, 2, size=200)) + [400.0, None]
    table = texts(*[f"dish {i}" for i in range(202)], price=prices)
    result = ZScoreOutliers(ZScoreOutliers.Config(column="price")).clean(table, CTX)
    assert result.table.num_rows == 201  # the outlier goes, the null stays
    assert 400.0 not in result.table.column("price").to_pylist()
    assert result.details["dropped"] == 1 and result.details["threshold"] == 3.0
    assert result.examples[0][0] == "dish 200"
    assert result.examples[0][1].startswith("price 400: |z|=")


def test_zscore_defaults_to_text_length_and_ignores_constant_values():
    table = texts(*(["short text"] * 50 + ["x" * 5000]))
    assert ZScoreOutliers().clean(table, CTX).table.num_rows == 50
    constant = ZScoreOutliers().clean(texts("same", "same", "same"), CTX)
    assert constant.table.num_rows == 3 and constant.details["std"] == 0.0


def test_zscore_refuses_a_text_column():
    with pytest.raises(InvalidArgument) as exc:
        ZScoreOutliers(ZScoreOutliers.Config(column="text")).clean(texts("a"), CTX)
    assert exc.value.violations[0].field == "config.column"
    assert "not numbers" in exc.value.message


# --- balance_labels ------------------------------------------------------------------------------


def test_oversampling_text_balances_labels_and_keeps_rows_whole():
    table = texts(
        *[f"review {i}" for i in range(12)], label=["pos"] * 9 + ["neg"] * 3, shop=list(range(12))
    )
    result = BalanceLabels().clean(table, CTX)
    out = result.table
    assert out.slice(0, 12).equals(table)  # originals first, in order
    assert out.column("label").to_pylist().count("neg") == 9
    for row in out.slice(12).to_pylist():  # every copy is a whole real row
        assert row["text"] == f"review {row['shop']}" and row["label"] == "neg"
    assert result.details == {
        "method": "oversample",
        "counts_before": {"pos": 9, "neg": 3},
        "counts_after": {"pos": 9, "neg": 9},
    }
    assert result.examples[0][1].startswith("copy of row")
    assert BalanceLabels().clean(table, CleanContext("text", "label", seed=1)).table.num_rows == 18


def test_undersampling_keeps_table_order():
    table = texts(*[f"r{i}" for i in range(10)], label=[0, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    out = BalanceLabels(BalanceLabels.Config(method="undersample")).clean(table, CTX).table
    assert out.column("label").to_pylist().count(0) == 2
    rows = [int(t[1:]) for t in out.column("text").to_pylist()]
    assert rows == sorted(rows) and {2, 5} <= set(rows)


def test_smote_balances_a_numeric_set():
    rng = np.random.default_rng(0)
    big = rng.normal(0, 1, size=(60, 2))
    small = rng.normal(5, 0.5, size=(12, 2))
    features = np.vstack([big, small])
    table = texts(
        *[f"point {i}" for i in range(72)],
        label=[0] * 60 + [1] * 12,
        x=features[:, 0],
        y=features[:, 1],
        count=pa.array(range(72), type=pa.int32()),
    )
    config = BalanceLabels.Config(features=["x", "y", "count"], k_neighbors=3)
    result = BalanceLabels(config).clean(table, CTX)
    out = result.table
    assert out.schema == table.schema
    assert result.details["method"] == "smote"
    assert result.details["counts_after"] == {"0": 60, "1": 60}
    synthetic = out.slice(72).to_pandas()
    assert (synthetic["label"] == 1).all()
    assert synthetic["x"].between(small[:, 0].min(), small[:, 0].max()).all()
    assert synthetic["text"].isin([f"point {i}" for i in range(60, 72)]).all()


def test_balance_refusals():
    table = texts("a", "b", "c", label=[0, 0, 1], x=[1.0, 2.0, 3.0])
    with pytest.raises(FailedPrecondition, match="needs a label column"):
        BalanceLabels().clean(table, CleanContext("text", ""))
    with pytest.raises(InvalidArgument) as exc:
        BalanceLabels(BalanceLabels.Config(features=["x"])).clean(table, CTX)
    assert exc.value.violations[0].field == "config.k_neighbors"
    with pytest.raises(InvalidArgument) as exc:
        BalanceLabels(BalanceLabels.Config(features=["text"])).clean(table, CTX)
    assert exc.value.violations[0].field == "config.features[0]"
    with pytest.raises(ValidationError, match="needs `features`"):
        BalanceLabels.Config(method="smote")


# --- length_filter -------------------------------------------------------------------------------


def test_length_filter_bounds_and_nulls():
    table = texts("", "ab", "abcd", "abcdefgh", None, label=[0, 1, 2, 3, 4])
    result = LengthFilter(LengthFilter.Config(min_chars=2, max_chars=4)).clean(table, CTX)
    assert result.table.column("label").to_pylist() == [1, 2]
    assert result.details == {"too_short": 2, "too_long": 1}
    assert ("abcdefgh", "8 chars > max_chars 4") in result.examples
    assert LengthFilter().clean(table, CTX).table.num_rows == 3
    with pytest.raises(ValidationError, match="below min_chars"):
        LengthFilter.Config(min_chars=5, max_chars=2)


# --- segment_zh ----------------------------------------------------------------------------------


def test_segment_chinese_with_private_user_words():
    table = texts("我爱北京天安门", "外卖小哥送餐很快 great food", None)
    result = SegmentChinese().clean(table, CTX)
    assert result.table.column("text").to_pylist() == [
        "我 爱 北京 天安门",
        "外卖 小哥 送餐 很快 great food",
        None,
    ]
    custom = SegmentChinese(
        SegmentChinese.Config(user_words=["北京天安门"], output_column="words")
    ).clean(table, CTX)
    assert custom.table.column("words").to_pylist()[0] == "我 爱 北京天安门"
    assert custom.table.column("text").equals(table.column("text"))
    # the user word did not leak into jieba's shared dictionary
    assert SegmentChinese().clean(table, CTX).table.column("text")[0].as_py() == "我 爱 北京 天安门"
    full = SegmentChinese(SegmentChinese.Config(cut_all=True)).clean(table, CTX)
    assert "天安 天安门" in full.table.column("text")[0].as_py()
