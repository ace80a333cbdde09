"""What is special about mask_urls. The cleaner contract itself is forgeline's contract suite
(tests/test_forgeline_contracts.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from forgeline.contracts.cleaners import CleanContext
from forgeline.errors import InvalidArgument
from forgeline.registry import PluginRegistry
from pydantic import ValidationError

from forgeline_plugin_example.cleaners import MaskUrls

CTX = CleanContext(text_column="text")


def table(texts: list[str | None], string_type: pa.DataType | None = None) -> pa.Table:
    text = pa.array(texts, type=string_type or pa.string())
    return pa.table({"text": text, "id": pa.array(range(len(texts)))})


def texts(result) -> list[str | None]:
    return result.table.column("text").to_pylist()


def test_masks_every_url_and_leaves_other_text_alone():
    result = MaskUrls().clean(
        table(
            [
                "order at https://shop.example.com/menu?id=7 today",
                "two: http://a.io and www.b.org/x",
                "no link here",
                None,
            ]
        ),
        CTX,
    )
    assert texts(result) == [
        "order at <url> today",
        "two: <url> and <url>",
        "no link here",
        None,
    ]
    assert result.details == {"rows_changed": 2, "urls_masked": 3}


def test_sentence_punctuation_after_a_url_is_kept():
    result = MaskUrls().clean(
        table(["see https://example.com/a.", "(www.example.com)", "详见https://a.cn/x，谢谢"]), CTX
    )
    assert texts(result) == ["see <url>.", "(<url>)", "详见<url>，谢谢"]


def test_replacement_is_configurable_and_taken_literally():
    rows = ["go to https://example.com now"]
    assert texts(MaskUrls(MaskUrls.Config(replacement="")).clean(table(rows), CTX)) == [
        "go to  now"
    ]
    assert texts(MaskUrls(MaskUrls.Config(replacement=r"[\1]")).clean(table(rows), CTX)) == [
        r"go to [\1] now"
    ]


def test_examples_are_the_changed_rows_before_masking():
    rows = [f"link {i}: https://example.com/{i}" for i in range(8)] + ["plain"]
    result = MaskUrls().clean(table(rows), CTX)
    assert result.examples == [(text, "url masked") for text in rows[: MaskUrls.MAX_EXAMPLES]]
    assert result.details["rows_changed"] == 8


def test_keeps_the_string_type_and_the_other_columns():
    source = table(["https://example.com"], pa.large_string())
    result = MaskUrls().clean(source, CTX)
    assert result.table.schema == source.schema
    assert result.table.column("id").equals(source.column("id"))


def test_a_missing_or_non_text_column_is_named():
    with pytest.raises(InvalidArgument, match="'body' not in dataset"):
        MaskUrls().clean(table(["x"]), CleanContext(text_column="body"))
    with pytest.raises(InvalidArgument, match="'id' holds int64"):
        MaskUrls().clean(table(["x"]), CleanContext(text_column="id"))


def test_config_refuses_unknown_fields():
    with pytest.raises(ValidationError):
        MaskUrls.Config.model_validate({"replacment": "x"})


def test_is_found_through_its_entry_point():
    """Needs the package installed (pip install -e .): entry points are package metadata."""
    registry = PluginRegistry(allow=["cleaners:mask_urls"])
    entries = registry.discover("cleaners")
    assert [(e.name, e.distribution) for e in entries] == [
        ("mask_urls", "forgeline-plugin-example")
    ], "install this package first: pip install -e ."
    assert registry.get("cleaners", "mask_urls") is MaskUrls
