"""The regularizer contract, over every regularizer to certify (fixture
``regularizers_plugin``): it prepares on a tiny classifier and a few old rows, costs nothing at
the weights it started from, costs something non-negative elsewhere, and saves its state without
a pickle.

torch and transformers are imported when the test runs (a skip where they are missing), so
that importing every suite stays cheap and never skips the other kinds' suites.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeline import modelio
from forgeline.contracts.regularizers import RegularizerContext
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = ["test_it_fulfils_the_contract"]

BERT = dict(
    vocab_size=40,
    num_hidden_layers=1,
    hidden_size=16,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=32,
    num_labels=2,
)


def tiny() -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(**BERT))


def old_batches() -> Iterator[dict[str, Any]]:
    import torch

    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        ids = torch.randint(5, 40, (4, 7), generator=generator)
        yield {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor([0, 1, 1, 0]),
        }


def test_it_fulfils_the_contract(regularizers_plugin, tmp_path: Path):
    torch = pytest.importorskip("torch")
    cls = regularizers_plugin
    assert contract_problem("regularizers", cls.name, cls) is None
    assert cls.description() and config_schema(cls)["type"] == "object"
    model = tiny()
    plugin = contract_instance(cls)
    plugin.prepare(model, RegularizerContext(old_batches=old_batches))
    assert float(plugin.penalty(model)) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    moved = plugin.penalty(model)
    assert float(moved) >= 0.0
    if isinstance(moved, torch.Tensor):
        moved.backward()  # differentiable: it joins the training loss
    plugin.save(tmp_path / "state")
    if (tmp_path / "state").exists():
        assert not [p for p in (tmp_path / "state").iterdir() if modelio.is_pickle(p)]
