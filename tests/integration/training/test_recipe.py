"""The training recipe on a real local Ray: DDP correctness, LoRA output, streamed metrics."""

from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgeline.finetune.build import build_from_config
from forgeline.finetune.metrics import ActorSink, MetricsSink
from forgeline.finetune.recipe import RecipeConfig, fit
from forgeline.models import CAUSAL_LM, SEQUENCE_CLASSIFICATION, evaluate, load_trained

TINY_BERT = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
GOOD = ["good food", "great taste", "fresh and tasty", "fast delivery", "lovely soup"]
BAD = ["cold food", "awful taste", "stale and salty", "slow delivery", "bland soup"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    texts = [f"{t} {i}" for i in range(8) for t in GOOD + BAD]
    labels = [int(t.split()[0] in {g.split()[0] for g in GOOD}) for t in texts]
    pq.write_table(pa.table({"text": texts, "label": labels}), root / "train.parquet")
    import torch

    torch.manual_seed(0)  # the random base is the same in every session
    build_from_config("bert", TINY_BERT, texts, 120, root / "bert")
    return root


def config(workspace, out: str, **overrides) -> RecipeConfig:
    return RecipeConfig(
        **{
            "model_path": str(workspace / "bert"),
            "train_path": str(workspace / "train.parquet"),
            "labels": ["0", "1"],
            "output_dir": str(workspace / out),
            "learning_rate": 1e-2,
            "max_steps": 6,
            "seed": 3,
            **overrides,
        }
    )


def trained_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_two_workers_of_batch_b_match_one_worker_of_batch_2b_and_a_seed_repeats_itself(
    ray_local, workspace
):
    import torch

    runs = (("one", 1, 8), ("two", 2, 4), ("two-again", 2, 4))
    for name, workers, batch in runs:
        fit(
            config(workspace, name, batch_size=batch, seed=11),
            num_workers=workers,
            use_gpu=False,
            cpus_per_worker=1,
            storage_path=str(workspace / "ray"),
            run_name=f"{name}-{uuid.uuid4().hex[:6]}",
        )
    base = (
        trained_weights(workspace / "bert")
        if (workspace / "bert" / "model.safetensors").exists()
        else {}
    )
    a, b, again = (trained_weights(workspace / name) for name, _, _ in runs)
    assert a.keys() == b.keys()
    moved = 0
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-4, rtol=1e-3), name
        key = name.removeprefix("bert.")
        if key in base and not torch.equal(base[key], a[name]):
            moved += 1
    assert moved > 0  # training changed the weights, identically under both layouts
    # The same seed on the same layout gives exactly the same weights.
    assert all(torch.equal(b[k], again[k]) for k in b)


@pytest.mark.slow
def test_lora_on_two_workers_saves_an_adapter_and_streams_metrics(ray_local, workspace):
    import ray
    from peft import PeftModel
    from transformers import AutoTokenizer

    sink_name = f"metrics-{uuid.uuid4().hex[:8]}"
    sink = ActorSink(ray.remote(MetricsSink).options(name=sink_name).remote())
    cfg = config(
        workspace,
        "lora",
        finetune="lora",
        # A random-init base needs adapters beyond query/value to learn in a few steps.
        finetune_config={"r": 8, "target_modules": ["query", "value", "dense"]},
        learning_rate=2e-2,
        batch_size=4,
        max_steps=40,
        checkpoint_every=10,
        metrics_actor=sink_name,
    )
    points: list = []
    stop = threading.Event()

    def store() -> None:  # the service's part: a checkpoint waits until its points are stored
        while not stop.wait(0.05):
            drained, count = sink.drain()
            points.extend(drained)
            sink.mark_stored(count)

    storing = threading.Thread(target=store, daemon=True)
    storing.start()
    try:
        result = fit(
            cfg,
            num_workers=2,
            use_gpu=False,
            cpus_per_worker=1,
            storage_path=str(workspace / "ray"),
            run_name=f"lora-{uuid.uuid4().hex[:6]}",
        )
    finally:
        stop.set()
        storing.join()
    points.extend(sink.drain()[0])
    assert [step for step, _ in points] == list(range(1, 41))
    assert all(p["samples_per_second"] > 0 and p["loss"] > 0 for _, p in points)
    assert result.checkpoint is not None and result.metrics["step"] == 40

    out = workspace / "lora"
    assert (out / "adapter_model.safetensors").exists()
    assert not list(out.glob("*.bin"))
    model = load_trained(out)  # task, labels and base model come from the folder's manifest
    assert isinstance(model, PeftModel)
    tokenizer = AutoTokenizer.from_pretrained(out)
    # The adapters trained (LoRA's B matrices start at zero); learning itself is asserted on
    # accuracy in the service tests and on real data in the e2e test.
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(float(p.abs().sum()) > 0 for p in lora_b)
    scores = evaluate(model, tokenizer, GOOD + BAD, ["1"] * 5 + ["0"] * 5, SEQUENCE_CLASSIFICATION)
    assert scores.num_examples == 10
    assert sum(map(sum, scores.confusion)) == 10 and scores.labels == ["0", "1"]


@pytest.mark.slow
def test_full_finetune_of_a_causal_lm_lowers_perplexity(ray_local, workspace):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [f"{t} {i}" for i in range(8) for t in GOOD + BAD]
    pq.write_table(pa.table({"text": texts}), workspace / "lm.parquet")
    build_from_config(
        "gpt2",
        {
            "n_layer": 2,
            "n_embd": 32,
            "n_head": 2,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        },
        texts,
        300,
        workspace / "gpt2",
    )
    tokenizer = AutoTokenizer.from_pretrained(workspace / "gpt2")
    before = evaluate(
        AutoModelForCausalLM.from_pretrained(workspace / "gpt2"),
        tokenizer,
        GOOD + BAD,
        None,
        CAUSAL_LM,
    )
    cfg = RecipeConfig(
        task=CAUSAL_LM,
        model_path=str(workspace / "gpt2"),
        train_path=str(workspace / "lm.parquet"),
        output_dir=str(workspace / "lm"),
        learning_rate=5e-3,
        batch_size=8,
        max_steps=20,
        seed=1,
        group_by_length=True,  # the grouped batches train a causal LM too
    )
    fit(
        cfg,
        num_workers=1,
        use_gpu=False,
        cpus_per_worker=1,
        storage_path=str(workspace / "ray"),
        run_name=f"lm-{uuid.uuid4().hex[:6]}",
    )
    trained = load_trained(workspace / "lm", CAUSAL_LM)
    after = evaluate(trained, tokenizer, GOOD + BAD, None, CAUSAL_LM)
    assert after.perplexity < before.perplexity / 2

    import torch

    with torch.no_grad():  # a diverged model: its loss overflows exp, its perplexity is inf
        trained.lm_head.weight.mul_(1e4)
    diverged = evaluate(trained, tokenizer, GOOD + BAD, None, CAUSAL_LM)
    assert diverged.loss > 710 and diverged.perplexity == float("inf")
