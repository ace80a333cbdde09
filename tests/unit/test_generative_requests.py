"""Generative requests where the services were classifier-only, checked without Ray or gRPC: the
objectives a tuning of a generative training may name (the eval loss and perplexity its trials
report; a generation metric refused with the reason), the compression planner on a tiny llama
(dynamic_int8 accepted with a perplexity budget; the compressors that do not apply refused,
naming the ones that do), and the cap on the sequences one generate call decodes."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("transformers")

import pyarrow as pa  # noqa: E402

from forgeline.artifacts import ArtifactStore, Lineage  # noqa: E402
from forgeline.datasets import DatasetRef, DatasetRepository  # noqa: E402
from forgeline.errors import FailedPrecondition, InvalidArgument  # noqa: E402
from forgeline.finetune.planning import TrainPlanner  # noqa: E402
from forgeline.finetune.spec import ModelChoice, TrainSpec  # noqa: E402
from forgeline.generation import (  # noqa: E402
    MAX_BATCH_SEQUENCES,
    DecodingOptions,
    generate_texts,
    generation_batch_size,
)
from forgeline.models import ModelRepository  # noqa: E402
from forgeline.paths import PathValidator  # noqa: E402
from forgeline.registry import Objective, PluginChoice, PluginRegistry  # noqa: E402
from forgeline.services.compression.planning import CompressPlanner, CompressSpec  # noqa: E402
from forgeline.services.tuning.planning import TunePlanner, TuneSpec  # noqa: E402
from tests.tiny_llm import tiny_llama_folder  # noqa: E402

TINY_LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
TINY_T5 = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}
WORDS = [" ".join(f"w{(i * 7 + j) % 60 + 1}" for j in range(12)) for i in range(8)]


@pytest.fixture()
def space(tmp_path):
    """An artifact store with generative datasets, the planners over it, and a tiny llama
    committed as a causal LM (and, by its metadata, as an instruction and a seq2seq model)."""
    store = ArtifactStore(tmp_path / "artifacts")
    datasets = DatasetRepository(store)
    registry = PluginRegistry()

    def save(name: str, table: pa.Table, text: str = "") -> str:
        return datasets.save(
            table, name=name, text_column=text, label_column="", lineage=Lineage()
        ).id

    llama = tiny_llama_folder(tmp_path / "llama")

    def model(task: str) -> str:
        copy = shutil.copytree(llama, tmp_path / f"staged-{task}")
        return store.commit_dir(
            copy,
            kind="model",
            name=f"tiny-{task}",
            metadata={"format": "hf", "task": task, "max_length": 64},
            lineage=Lineage(),
        ).id

    yield {
        "tune": TunePlanner(
            registry, TrainPlanner(registry, datasets, store, PathValidator([tmp_path]))
        ),
        "compress": CompressPlanner(registry, datasets, ModelRepository(store)),
        "pairs": save("pairs", pa.table({"prompt": WORDS, "response": WORDS[::-1]})),
        "texts": save("texts", pa.table({"text": WORDS, "target": WORDS[::-1]}), text="text"),
        "causal_lm": model("causal_lm"),
        "instruction": model("instruction"),
        "seq2seq": model("seq2seq"),
    }
    store.close()


# --- tuning: the objectives are what the trials report ------------------------------------------


def training(space, task: str, with_eval: bool = True) -> TrainSpec:
    data = "texts" if task == "seq2seq" else "pairs"
    model_type, config = ("t5", TINY_T5) if task == "seq2seq" else ("llama", TINY_LLAMA)
    return TrainSpec(
        train=DatasetRef(space[data]),
        eval=DatasetRef(space[data]) if with_eval else None,
        model=ModelChoice(model_type=model_type, config=config, vocab_size=300),
        task=task,
        finetune=PluginChoice("lora"),
        batch_size=4,
        max_length=32,
    )


def objectives(space, spec: TrainSpec, *named: str) -> tuple[Objective, ...]:
    planner = space["tune"]
    train = planner.train_planner.plan_train(spec)
    tune = TuneSpec(train=spec, space=(), objectives=tuple(Objective(m, "") for m in named))
    return planner._objectives(tune, train)


@pytest.mark.parametrize("task", ["instruction", "seq2seq"])
def test_a_generative_tuning_ranks_trials_by_eval_loss_or_perplexity(space, task):
    spec = training(space, task)
    assert objectives(space, spec) == (Objective("eval_loss", "min"),)
    assert objectives(space, spec, "eval_perplexity", "eval_loss") == (
        Objective("eval_perplexity", "min"),
        Objective("eval_loss", "min"),
    )
    without_eval = training(space, task, with_eval=False)
    assert objectives(space, without_eval) == (Objective("loss", "min"),)


@pytest.mark.parametrize("metric", ["eval_rouge_rougeL", "rouge_rouge1", "eval_bleu_bleu"])
def test_a_generation_metric_objective_is_refused_with_the_reason(space, metric):
    with pytest.raises(InvalidArgument) as caught:
        objectives(space, training(space, "instruction"), "eval_loss", metric)
    error = caught.value
    assert [v.field for v in error.violations] == ["objectives[1].metric"]
    assert "generates nothing" in error.message and "EvaluateModel" in error.message
    assert "eval_loss or eval_perplexity" in error.message


def test_a_classifier_metric_is_refused_for_a_generative_tuning(space):
    with pytest.raises(InvalidArgument) as caught:
        objectives(space, training(space, "seq2seq"), "eval_accuracy")
    assert [v.field for v in caught.value.violations] == ["objectives[0].metric"]
    assert "eval_loss, eval_perplexity" in caught.value.message


# --- compression: a causal LM, measured by perplexity -------------------------------------------


def compress(space, model: str = "causal_lm", *compressors: str, **fields):
    return space["compress"].plan(
        CompressSpec(
            model_id=space[model],
            eval=DatasetRef(space["texts"]),
            compressors=tuple(PluginChoice(c) for c in compressors or ("dynamic_int8",)),
            **fields,
        )
    )


@pytest.mark.parametrize("task", ["causal_lm", "instruction"])
def test_a_decoder_language_model_is_planned_for_int8_with_a_perplexity_budget(space, task):
    plan = compress(space, task)
    assert plan.task == task and plan.metric == "perplexity" and plan.budget == 0.01
    assert [(s.choice.name, s.output_format) for s in plan.steps] == [("dynamic_int8", "hf_int8")]
    assert plan.eval.text == "text" and plan.eval.label == ""


@pytest.mark.parametrize(
    ("chain", "refused"),
    [
        (("structured_prune",), 0),
        (("dynamic_int8", "onnx_export"), 1),
        (("distill",), 0),
    ],
)
def test_a_compressor_that_does_not_apply_to_a_causal_lm_is_refused_naming_those_that_do(
    space, chain, refused
):
    with pytest.raises(FailedPrecondition) as caught:
        compress(space, "causal_lm", *chain)
    error = caught.value
    assert error.reason == "COMPRESSOR_NOT_APPLICABLE"
    assert error.metadata["field"] == f"compressors[{refused}].name"
    assert f"{chain[refused]} compresses sequence_classification models" in error.message
    assert error.message.endswith("these apply: dynamic_int8")


def test_a_classifier_budget_metric_is_refused_for_a_causal_lm(space):
    with pytest.raises(InvalidArgument) as caught:
        compress(space, "causal_lm", budget_metric="accuracy")
    assert [v.field for v in caught.value.violations] == ["budget_metric"]
    assert "known: perplexity" in caught.value.message


def test_a_seq2seq_model_is_refused_by_compression_naming_the_model(space):
    with pytest.raises(FailedPrecondition) as caught:
        compress(space, "seq2seq")
    assert caught.value.metadata["field"] == "model_id"
    assert "seq2seq" in caught.value.message and "perplexity" in caught.value.message


# --- the generation batch cap -------------------------------------------------------------------


def test_the_generation_batch_is_capped_in_sequences():
    greedy, beams = DecodingOptions(), DecodingOptions(strategy="beam", num_beams=16)
    assert generation_batch_size(0, greedy) == 8
    assert generation_batch_size(0, beams) == MAX_BATCH_SEQUENCES // 16 == 4
    assert generation_batch_size(MAX_BATCH_SEQUENCES, greedy) == MAX_BATCH_SEQUENCES
    for requested, options in ((MAX_BATCH_SEQUENCES + 1, greedy), (5, beams)):
        with pytest.raises(InvalidArgument) as caught:
            generation_batch_size(requested, options)
        assert [v.field for v in caught.value.violations] == ["batch_size"]
        assert f"limit of {MAX_BATCH_SEQUENCES} sequences" in caught.value.message


def test_generate_texts_refuses_an_oversized_batch_before_touching_the_model():
    """Every caller is held to the cap, not only the ones that check it first: the refusal
    comes before the model is used (None here would fail on any use)."""
    with pytest.raises(InvalidArgument) as caught:
        generate_texts(None, None, ["a"], DecodingOptions(), batch_size=MAX_BATCH_SEQUENCES + 1)
    assert [v.field for v in caught.value.violations] == ["batch_size"]
