"""The finetune strategy contract, over every strategy to certify (fixture ``finetune_plugin``).

A strategy gets a tiny random-init model (built from config, no downloads) for each task it
declares it can handle; what it returns must train (some weights, not none), run forward and
backward, and save in the format it promises: a full save_pretrained folder, or a PEFT adapter
folder that ``PeftModel.from_pretrained`` loads back with the same outputs. torch and
transformers are imported when a test runs (a skip where they are missing), so that importing
every suite stays cheap and never skips the other kinds' suites.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forgeline.contracts.finetune import FinetuneContext
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_it_fulfils_the_kind_contract",
    "test_prepared_model_trains_some_weights_and_saves_what_it_promises",
]

BERT = dict(
    vocab_size=64,
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
    num_labels=3,
)
GPT2 = dict(vocab_size=64, n_layer=2, n_embd=32, n_head=2, n_positions=128)
LLAMA = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
T5 = dict(
    vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, decoder_start_token_id=0
)
# (task, architecture): every task on each kind of model it trains, so a strategy's defaults
# (LoRA's target layers, prompt tuning's task type) are checked per architecture.
CASES = [
    ("sequence_classification", "bert"),
    ("causal_lm", "gpt2"),
    ("instruction", "llama"),
    ("seq2seq", "t5"),
    ("seq2seq", "longt5"),  # no PEFT defaults: LoRA finds its q and v layers by name
    ("seq2seq", "bart"),
]
BART = dict(
    vocab_size=64,
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    max_position_embeddings=128,
)


def tiny(task: str, architecture: str) -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if architecture == "bert":
        return transformers.BertForSequenceClassification(transformers.BertConfig(**BERT))
    if architecture == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA))
    if architecture == "t5":
        return transformers.T5ForConditionalGeneration(transformers.T5Config(**T5))
    if architecture == "bart":
        return transformers.BartForConditionalGeneration(transformers.BartConfig(**BART))
    if architecture == "longt5":
        return transformers.LongT5ForConditionalGeneration(transformers.LongT5Config(**T5))
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2))


def batch(task: str) -> dict:
    import torch

    ids = torch.randint(1, 64, (4, 12), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1]) if task == "sequence_classification" else ids.clone()
    if task == "instruction":
        labels[:, :6] = -100  # the prompt half: no loss
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def test_it_fulfils_the_kind_contract(finetune_plugin):
    strategy = contract_instance(finetune_plugin)
    assert contract_problem("finetune", strategy.name, type(strategy)) is None
    schema = config_schema(type(strategy))
    json.dumps(schema)
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{strategy.name}.Config.{name} has no description"


@pytest.mark.parametrize(("task", "architecture"), CASES)
def test_prepared_model_trains_some_weights_and_saves_what_it_promises(
    finetune_plugin, task: str, architecture: str, tmp_path: Path
):
    torch = pytest.importorskip("torch")
    strategy = contract_instance(finetune_plugin)
    model = tiny(task, architecture)
    ctx = FinetuneContext(task=task, max_length=12)
    strategy.check(model, ctx)
    prepared = strategy.prepare(model, ctx)
    trainable = [p for p in prepared.parameters() if p.requires_grad]
    assert trainable, f"{strategy.name} left nothing to train"
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    prepared.train()
    loss = prepared(**batch(task)).loss
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable, strict=True))

    prepared.eval()
    prepared.save_pretrained(tmp_path, safe_serialization=True)
    assert not list(tmp_path.glob("*.bin")), "weights must be safetensors"
    inputs = {k: v for k, v in batch(task).items() if k != "labels"}
    if task == "seq2seq":  # the decoder reads the targets shifted right
        inputs["decoder_input_ids"] = batch(task)["labels"]
    with torch.no_grad():
        expected = prepared(**inputs).logits
    if strategy.produces_adapter:
        from peft import PeftModel

        assert (tmp_path / "adapter_config.json").exists()
        reloaded = PeftModel.from_pretrained(tiny(task, architecture), tmp_path).eval()
    else:
        assert (tmp_path / "model.safetensors").exists()
        reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, expected, atol=1e-5)
