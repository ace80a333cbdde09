"""The cleaner contract: every cleaner to certify (fixture ``cleaners_plugin``, parametrized by
forgeline's pytest plugin) against it.

A cleaner is found through its entry point, exactly as a service finds it. A cleaner whose
defaults cannot run overrides the ``contract_config`` classmethod to return the config (a dict)
to test with.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow as pa
import pytest

from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult, ReferencedDataset
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_cleans_a_table_keeping_every_column_and_type",
    "test_does_not_change_its_input",
    "test_is_deterministic_under_a_seed",
    "test_empty_table_gives_an_empty_table",
    "test_names_the_datasets_it_reads_as_config_fields",
]

CTX = CleanContext(text_column="text", label_column="label", seed=0)


def sample() -> pa.Table:
    """Mixed English and Chinese reviews with duplicates, a long outlier and an empty text."""
    texts = [
        "The food was good and the delivery was quick.",
        "the food was GOOD and the delivery was quick.",
        "Ｔｈｅ ｆｏｏｄ was cold.",
        "Portions are small but the price is fair.",
        "Portions are small but the price is fair!",
        "很快，好吃，味道足，量大",
        "很快，好吃，味道足，量大！",
        "送餐太慢了，菜都凉了",
        "",
        "Great noodles, friendly driver.",
        "Terrible service, never again.",
        "long " * 400,
    ] + [f"review number {i} about rice and soup" for i in range(12)]
    labels = [1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0] + [i % 3 == 0 for i in range(12)]
    return pa.table(
        {
            "text": texts,
            "label": pa.array([int(v) for v in labels], type=pa.int64()),
            "score": pa.array([float(i) / 7 for i in range(len(texts))], type=pa.float64()),
            "shop": [f"shop-{i % 4}" for i in range(len(texts))],
        }
    )


def run(cleaner: Cleaner, table: pa.Table) -> CleanResult:
    """``cleaner.clean`` with every dataset it names (``references``) handed over, as the data
    service does: here the sample's first half, which shares rows with the sample."""
    other = sample().slice(0, 12)
    datasets = {
        ref: ReferencedDataset("ds_contract", other, "text", "label")
        for ref in cleaner.references().values()
    }
    return cleaner.clean(table, replace(CTX, datasets=datasets))


def test_fulfils_the_kernel_contract(cleaners_plugin):
    assert contract_problem("cleaners", cleaners_plugin.name, cleaners_plugin) is None
    assert cleaners_plugin.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(cleaners_plugin):
    schema = json.loads(json.dumps(config_schema(cleaners_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        cleaners_plugin.Config.model_validate({"no_such_field": 1})


def test_cleans_a_table_keeping_every_column_and_type(cleaners_plugin):
    table = sample()
    result = run(contract_instance(cleaners_plugin), table)
    assert isinstance(result, CleanResult)
    assert isinstance(result.table, pa.Table)
    for field in table.schema:
        assert field.name in result.table.column_names, f"dropped column {field.name!r}"
        assert result.table.schema.field(field.name).type == field.type
    assert len(result.examples) <= Cleaner.MAX_EXAMPLES
    for text, reason in result.examples:
        assert isinstance(text, str) and isinstance(reason, str) and reason
    json.dumps(result.details)  # details travel as a protobuf Struct: plain JSON values only


def test_does_not_change_its_input(cleaners_plugin):
    table = sample()
    run(contract_instance(cleaners_plugin), table)
    assert table.equals(sample())


def test_is_deterministic_under_a_seed(cleaners_plugin):
    first = run(contract_instance(cleaners_plugin), sample())
    again = run(contract_instance(cleaners_plugin), sample())
    assert first.table.equals(again.table)
    assert first.examples == again.examples
    assert first.details == again.details


def test_empty_table_gives_an_empty_table(cleaners_plugin):
    empty = sample().slice(0, 0)
    result = run(contract_instance(cleaners_plugin), empty)
    assert result.table.num_rows == 0
    assert set(empty.column_names) <= set(result.table.column_names)


def test_names_the_datasets_it_reads_as_config_fields(cleaners_plugin):
    references = contract_instance(cleaners_plugin).references()
    assert isinstance(references, dict)
    for field, ref in references.items():
        assert field in cleaners_plugin.Config.model_fields, f"{field!r} is not a config field"
        assert isinstance(ref, str) and ref
