"""Every installed augmenter, forgeline's own and third parties', against the augmenter contract.

An augmenter whose defaults cannot run overrides the ``contract_config`` classmethod to return
the config (a dict) to test with.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from forgeline.contracts.augmenters import AugmentContext, Augmenter
from forgeline.registry import PluginRegistry, config_schema, contract_problem

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("augmenters")]


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


def make(cls: type[Augmenter]) -> Augmenter:
    config = cls.contract_config()
    return cls(cls.Config.model_validate(config) if config is not None else None)


@pytest.fixture(params=NAMES)
def augmenter_cls(request) -> type[Augmenter]:
    return REGISTRY.get("augmenters", request.param)


def test_there_are_augmenters_to_certify():
    assert {"synonym_replace", "random_swap", "random_insertion", "random_deletion"} <= set(NAMES)


def test_fulfils_the_kernel_contract(augmenter_cls):
    assert contract_problem("augmenters", augmenter_cls.name, augmenter_cls) is None
    assert augmenter_cls.description()


def test_config_schema_is_json_with_every_field_described(augmenter_cls):
    schema = json.loads(json.dumps(config_schema(augmenter_cls)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"


def test_new_rows_have_the_input_schema(augmenter_cls):
    table = sample()
    new_rows = make(augmenter_cls).augment(table, ctx(0))
    assert isinstance(new_rows, pa.Table)
    assert new_rows.schema == table.schema
    assert new_rows.num_rows > 0
    assert new_rows.column("text").null_count == 0


def test_does_not_change_its_input(augmenter_cls):
    table = sample()
    make(augmenter_cls).augment(table, ctx(0))
    assert table.equals(sample())


def test_same_seed_same_rows_other_seed_other_rows(augmenter_cls):
    augmenter = make(augmenter_cls)
    first = augmenter.augment(sample(), ctx(0))
    assert first.equals(make(augmenter_cls).augment(sample(), ctx(0)))
    assert not first.equals(augmenter.augment(sample(), ctx(1)))


def test_empty_table_gives_no_rows(augmenter_cls):
    empty = sample().slice(0, 0)
    new_rows = make(augmenter_cls).augment(empty, ctx(0))
    assert new_rows.num_rows == 0
    assert new_rows.schema == empty.schema
