"""The augmenter contract, over every augmenter to certify (fixture ``augmenters_plugin``).

An augmenter whose defaults cannot run overrides the ``contract_config`` classmethod to return
the config (a dict) to test with.
"""

from __future__ import annotations

import json

import pyarrow as pa

from forgeline.contracts.augmenters import AugmentContext
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_new_rows_have_the_input_schema",
    "test_does_not_change_its_input",
    "test_same_seed_same_rows_other_seed_other_rows",
    "test_empty_table_gives_no_rows",
]


def sample() -> pa.Table:
    sentences = [
        "the food was good and the delivery was quick",
        "a great movie with a funny and beautiful story",
        "the price is cheap but the portion is small",
        "very friendly driver and fresh hot noodles",
        "I like this phone, it is easy to use",
        "terrible service and the soup was cold and bad",
        "送餐很快，味道好吃，推荐",
        "价格便宜，分量一般，还会再来",
    ]
    texts = [f"{s} {i}" for i in range(3) for s in sentences]
    return pa.table(
        {
            "text": texts,
            "label": pa.array([i % 2 for i in range(len(texts))], type=pa.int64()),
            "id": pa.array(range(len(texts)), type=pa.int32()),
        }
    )


def ctx(seed: int) -> AugmentContext:
    return AugmentContext(text_column="text", label_column="label", seed=seed)


def test_fulfils_the_kernel_contract(augmenters_plugin):
    assert contract_problem("augmenters", augmenters_plugin.name, augmenters_plugin) is None
    assert augmenters_plugin.description()


def test_config_schema_is_json_with_every_field_described(augmenters_plugin):
    schema = json.loads(json.dumps(config_schema(augmenters_plugin)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"


def test_new_rows_have_the_input_schema(augmenters_plugin):
    table = sample()
    new_rows = contract_instance(augmenters_plugin).augment(table, ctx(0))
    assert isinstance(new_rows, pa.Table)
    assert new_rows.schema == table.schema
    assert new_rows.num_rows > 0
    assert new_rows.column("text").null_count == 0


def test_does_not_change_its_input(augmenters_plugin):
    table = sample()
    contract_instance(augmenters_plugin).augment(table, ctx(0))
    assert table.equals(sample())


def test_same_seed_same_rows_other_seed_other_rows(augmenters_plugin):
    augmenter = contract_instance(augmenters_plugin)
    first = augmenter.augment(sample(), ctx(0))
    assert first.equals(contract_instance(augmenters_plugin).augment(sample(), ctx(0)))
    assert not first.equals(augmenter.augment(sample(), ctx(1)))


def test_empty_table_gives_no_rows(augmenters_plugin):
    empty = sample().slice(0, 0)
    new_rows = contract_instance(augmenters_plugin).augment(empty, ctx(0))
    assert new_rows.num_rows == 0
    assert new_rows.schema == empty.schema
