"""The built-in finetune strategies: what trains, and the up-front checks with named fields."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from forgeline.contracts.finetune import FinetuneContext  # noqa: E402
from forgeline.errors import InvalidArgument  # noqa: E402
from forgeline.plugins.finetune.full import FullFinetune  # noqa: E402
from forgeline.plugins.finetune.lora import LoraFinetune  # noqa: E402
from forgeline.plugins.finetune.prompt_tuning import PromptTuning  # noqa: E402

CTX = FinetuneContext(task="sequence_classification", max_length=32)


def bert():
    config = transformers.BertConfig(
        vocab_size=50,
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return transformers.BertForSequenceClassification(config)


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything_unless_embeddings_are_frozen():
    model = bert()
    assert trainable_names(FullFinetune().prepare(model, CTX)) == {
        n for n, _ in model.named_parameters()
    }
    frozen = FullFinetune(FullFinetune.Config(freeze_embeddings=True)).prepare(bert(), CTX)
    names = trainable_names(frozen)
    assert not any(".embeddings." in n for n in names)
    assert "classifier.weight" in names and any(".encoder." in n for n in names)


def test_lora_trains_only_adapters_and_the_head():
    model = LoraFinetune(LoraFinetune.Config(r=4)).prepare(bert(), CTX)
    names = trainable_names(model)
    assert names, "nothing trains"
    assert all("lora_" in n or "classifier" in n for n in names), names
    assert any(".query.lora_A" in n for n in names) and any(".value.lora_B" in n for n in names)
    assert not any(".key.lora_" in n for n in names)  # PEFT's default for BERT: query, value
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < 0.1 * total


def test_lora_names_the_field_and_lists_layers_for_unknown_target_modules():
    lora = LoraFinetune(LoraFinetune.Config(target_modules=["query", "q_proj"]))
    with pytest.raises(InvalidArgument) as caught:
        lora.check(bert(), CTX)
    assert caught.value.violations[0].field == "finetune.config.target_modules"
    assert "['q_proj']" in caught.value.message and "dense" in caught.value.message
    LoraFinetune(LoraFinetune.Config(target_modules=["key", "dense"])).check(bert(), CTX)


def test_prompt_tuning_refuses_more_positions_than_the_model_has():
    with pytest.raises(InvalidArgument) as caught:
        PromptTuning(PromptTuning.Config(num_virtual_tokens=40)).check(bert(), CTX)
    assert caught.value.violations[0].field == "finetune.config.num_virtual_tokens"
    assert "72" in caught.value.message and "64" in caught.value.message
    PromptTuning(PromptTuning.Config(num_virtual_tokens=32)).check(bert(), CTX)


def test_prompt_tuning_learns_only_the_prompt_and_the_head():
    model = PromptTuning(PromptTuning.Config(num_virtual_tokens=5)).prepare(bert(), CTX)
    names = trainable_names(model)
    assert any("prompt_encoder" in n for n in names)
    assert all("prompt_encoder" in n or "classifier" in n for n in names), names
    ids = torch.randint(1, 50, (2, 7))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert out.logits.shape == (2, 2)


def test_configs_reject_out_of_range_values():
    with pytest.raises(ValueError):
        LoraFinetune.Config(r=0)
    with pytest.raises(ValueError):
        PromptTuning.Config(num_virtual_tokens=0)
    with pytest.raises(ValueError):
        LoraFinetune.Config(rank=8)  # unknown field
