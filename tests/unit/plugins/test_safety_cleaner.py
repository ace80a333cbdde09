"""safety_filter: an input filter, made through the registry it is given, cleaning a dataset."""

from __future__ import annotations

import pyarrow as pa
import pytest

from forgeline.contracts.cleaners import CleanContext
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.registry import PluginRegistry


def table() -> pa.Table:
    return pa.table(
        {
            "text": pa.array(
                [
                    "Great noodles, email me at amy@example.com",
                    "送餐太慢了，电话13800138000，垃圾服务",
                    None,
                    "plain review, order 20240115123456789",
                    "call +1 (415) 555-0132 or 415-555-0199 about this SPAM",
                ],
                type=pa.large_string(),
            ),
            "label": [1, 0, 0, 1, 0],
        }
    )


def clean(config: dict, ctx: CleanContext | None = None, registry: PluginRegistry | None = None):
    registry = registry or PluginRegistry()
    cleaner = registry.create("cleaners", "safety_filter", config, "cleaners[0]")
    return cleaner.clean(table(), ctx or CleanContext(label_column="label", registry=registry))


def test_pii_is_masked_in_place_keeping_every_row_and_type():
    result = clean({"filter": "pii", "mask": "<{label}>"})
    assert result.table.column("text").to_pylist() == [
        "Great noodles, email me at <EMAIL>",
        "送餐太慢了，电话<PHONE>，垃圾服务",
        None,
        "plain review, order 20240115123456789",
        "call <PHONE> or <PHONE> about this SPAM",
    ]
    assert result.table.schema == table().schema
    assert result.table.column("label").to_pylist() == [1, 0, 0, 1, 0]
    assert result.details == {
        "rows_in": 5,
        "rows_out": 5,
        "rows_redacted": 3,
        "matches": {"email": 1, "phone": 3},
    }
    assert result.examples[0] == ("Great noodles, email me at <EMAIL>", "redact: email")


def test_blocklist_drops_matching_rows_and_checks_for_cancellation():
    calls = []
    ctx = CleanContext(check_cancelled=lambda: calls.append(1))  # no registry: a fresh one
    result = clean({"filter": "blocklist", "config": {"words": ["spam", "垃圾"]}}, ctx)
    assert result.table.column("label").to_pylist() == [1, 0, 1]
    assert result.details == {
        "rows_in": 5,
        "rows_out": 3,
        "rows_dropped": 2,
        "matches": {"spam": 1, "垃圾": 1},
    }
    # The example shows the row around what was found, never the find itself.
    assert result.examples[0] == ("送餐太慢了，电话13800138000，[垃圾]服务", "drop: 垃圾")
    assert calls  # between batches
    redacted = clean({"filter": "blocklist", "config": {"words": ["spam"]}, "action": "redact"})
    assert redacted.table.column("text").to_pylist()[4].endswith("about this [SPAM]")


def test_the_filter_is_checked_through_the_registry_naming_the_field():
    with pytest.raises(InvalidArgument) as exc:
        clean({"filter": "no_such_filter"})
    assert exc.value.violations[0].field == "config.filter"
    assert "blocklist" in exc.value.message  # the known filters are listed
    with pytest.raises(InvalidArgument, match=r"config\.config\.kinds"):
        clean({"filter": "pii", "config": {"kinds": ["shoe_size"]}})
    only_pii = PluginRegistry(allow=["cleaners:safety_filter", "input_filters:pii"])
    with pytest.raises(InvalidArgument, match="unknown input_filters plugin 'blocklist'"):
        clean({"filter": "blocklist", "config": {"words": ["x"]}}, registry=only_pii)
    with pytest.raises(FailedPrecondition, match="config.model_id"):
        clean({"filter": "classifier", "config": {"model_id": "spam-model", "labels": ["spam"]}})
