"""Every installed regularizer, forgeline's own and third parties', against the contract: it
prepares on a tiny classifier and a few old rows, costs nothing at the weights it started from,
costs something non-negative elsewhere, and saves its state without a pickle."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from forgeline import modelio  # noqa: E402
from forgeline.contracts.regularizers import RegularizerContext  # noqa: E402
from forgeline.registry import PluginRegistry, config_schema, contract_problem  # noqa: E402

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("regularizers")]
BERT = dict(
    vocab_size=40,
    num_hidden_layers=1,
    hidden_size=16,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=32,
    num_labels=2,
)


def tiny():
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(**BERT))


def old_batches():
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        ids = torch.randint(5, 40, (4, 7), generator=generator)
        yield {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor([0, 1, 1, 0]),
        }


@pytest.mark.parametrize("name", NAMES)
def test_it_fulfils_the_contract(name, tmp_path):
    cls = REGISTRY.get("regularizers", name)
    assert contract_problem("regularizers", name, cls) is None
    assert cls.description() and config_schema(cls)["type"] == "object"
    plugin = cls(cls.Config.model_validate(cls.contract_config() or {}))
    model = tiny()
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
