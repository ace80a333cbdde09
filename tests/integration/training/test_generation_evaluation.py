"""Generation-based evaluation through the real training service: EvaluateModel with
``generation`` on a tiny causal LM and instruction model built from config (metrics checked
against values computed here from the returned samples), TrainBaseline of the extractive
summarization baselines scored with ROUGE (on IN-Abs judgments when ../shared/data has them),
and bad requests refused before any operation starts, naming the field."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from google.longrunning import operations_pb2

from forgeline.artifacts import Lineage
from forgeline.convert import from_struct
from forgeline.errors import InvalidArgument
from forgeline.finetune.build import build_from_config
from forgeline.generation import DecodingOptions, generate_texts, render_chat
from forgeline.registry import PluginRegistry
from forgeline.services.training.generative import subset
from forgeline.v1 import common_pb2, plugin_service_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.conftest import REPO, shared_data
from tests.fixtures import spec
from tests.tiny_llm import tiny_t5

TEXTS = [
    "the court held that the appeal fails and is dismissed with costs",
    "a cat sat on the mat and looked at the door",
    "the judgment of the high court is set aside",
    "the appellant was convicted under section 302",
    "the tenant paid the rent late every month",
    "we allow the petition and quash the order",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
MAX_NEW = 6


def operation_count(client) -> int:
    listed = client.operations.ListOperations(operations_pb2.ListOperationsRequest(page_size=1000))
    return len(listed.operations)


def commit(training, folder: Path, name: str, task: str, **meta):
    """A copy of ``folder`` as a model artifact (commit_dir moves what it is given)."""
    return training.store.commit_dir(
        shutil.copytree(folder, training.home / "staging" / name),
        kind="model",
        name=name,
        metadata={"format": "hf", "task": task, "max_length": 64, **meta},
        lineage=Lineage(),
    )


def local_outputs(folder: Path, prompts: list[str], *, chat: bool = False) -> list[str]:
    """What greedy decoding of the model in ``folder`` gives, computed here, not by the service."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if chat:
        prompts = [render_chat(tokenizer, p) for p in prompts]
    options = DecodingOptions(max_new_tokens=MAX_NEW)
    return [
        g.text
        for g in generate_texts(model, tokenizer, prompts, options, add_special_tokens=not chat)
    ]


@pytest.fixture(scope="module")
def models(training, tmp_path_factory) -> dict[str, object]:
    """A tiny random-init gpt2 as a causal LM and, with a chat template, as an instruction
    model; a dataset whose references equal the model's greedy output on even rows only."""
    import torch

    work = tmp_path_factory.mktemp("generation-eval")
    torch.manual_seed(0)  # the same random model every run
    folder = build_from_config(
        "gpt2", {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 64}, TEXTS, 300,
        work / "gpt2",
    )  # fmt: skip
    chat = shutil.copytree(folder, work / "chat")
    config = json.loads((chat / "tokenizer_config.json").read_text())
    (chat / "tokenizer_config.json").write_text(
        json.dumps({**config, "chat_template": CHAT_TEMPLATE})
    )
    causal = local_outputs(folder, TEXTS)
    instruct = local_outputs(chat, TEXTS, chat=True)
    references = [out if i % 2 == 0 else "something else entirely" for i, out in enumerate(causal)]
    table = pa.table({"text": TEXTS, "target": references, "label": ["a", "b"] * 3})
    return {
        "causal": commit(training, folder, "gen-causal", "causal_lm").id,
        "instruction": commit(training, chat, "gen-instruction", "instruction").id,
        "classifier": commit(
            training, folder, "gen-classifier", "sequence_classification", labels=["a", "b"]
        ).id,
        "dataset": training.dataset(table, "gen-eval").id,
        "causal_outputs": causal,
        "instruction_outputs": instruct,
        "references": references,
    }


def generation(**fields) -> pb.GenerationEvaluation:
    fields.setdefault("decoding", pb.DecodingOptions(max_new_tokens=MAX_NEW))
    return pb.GenerationEvaluation(**fields)


def evaluate(tclient, model_id: str, dataset_id: str, **fields) -> pb.Evaluation:
    op = tclient.training.EvaluateModel(
        pb.EvaluateModelRequest(
            model_id=model_id,
            dataset=common_pb2.DatasetInput(dataset_id=dataset_id),
            generation=generation(**fields),
        )
    )
    return tclient.wait(op, pb.EvaluateModelResponse, timeout=300).evaluation


def rescored(samples, metric: str) -> dict[str, float]:
    """The corpus scores of ``samples`` by the metric plugin, computed here."""
    plugin = PluginRegistry().create("generation_metrics", metric, {}, "m")
    found = plugin.score([s.output for s in samples], [s.reference for s in samples])
    return {f"{metric}_{k}": v for k, v in found.corpus.items()}


def test_a_causal_lm_is_scored_on_what_it_generates(tclient, models):
    evaluation = evaluate(
        tclient,
        models["causal"],
        models["dataset"],
        metrics=[spec("rouge"), spec("exact_match")],
        samples=len(TEXTS),
    )
    assert evaluation.num_examples == len(TEXTS)
    samples = list(evaluation.samples)
    assert [s.row for s in samples] == list(range(len(TEXTS)))
    assert [s.output for s in samples] == models["causal_outputs"]
    assert [s.reference for s in samples] == models["references"]
    assert [s.source_excerpt for s in samples] == TEXTS
    metrics = dict(evaluation.metrics)
    # Even rows' references are the outputs themselves, odd rows' are not.
    assert metrics["exact_match_exact_match"] == pytest.approx(0.5)
    for key, value in rescored(samples, "rouge").items():
        assert metrics[key] == pytest.approx(value)
    assert set(metrics) == {
        "rouge_rouge1",
        "rouge_rouge2",
        "rouge_rougeL",
        "exact_match_exact_match",
    }
    assert evaluation.perplexity > 1.0  # perplexity stays for a causal LM
    settings = from_struct(evaluation.generation_settings)
    assert settings["decoding"]["strategy"] == "greedy"
    assert settings["decoding"]["max_new_tokens"] == MAX_NEW
    assert settings["long_inputs"]["name"] == "truncate"
    assert settings["input_token_budget"] == 64 - MAX_NEW  # the model's 64 positions less output
    assert [m["name"] for m in settings["metrics"]] == ["rouge", "exact_match"]

    # `forgeline train evaluate` prints the metrics and the samples.
    from forgeline.cli.app import console
    from forgeline.services.training.commands import _print_evaluation

    with console.capture() as captured:
        _print_evaluation(evaluation)
    printed = captured.get()
    assert f"rouge_rougeL {metrics['rouge_rougeL']:.4f}" in printed
    assert "exact_match_exact_match 0.5000" in printed and "perplexity" in printed
    assert "something" in printed  # a reference, in the samples table


def test_an_instruction_model_reads_its_chat_template_and_a_seeded_subset(
    training, tclient, models
):
    evaluation = evaluate(
        tclient, models["instruction"], models["dataset"], max_examples=3, seed=5, samples=3
    )
    rows = subset(len(TEXTS), 3, 5)
    assert evaluation.num_examples == 3
    assert [s.row for s in evaluation.samples] == rows
    assert [s.output for s in evaluation.samples] == [
        models["instruction_outputs"][i] for i in rows
    ]
    settings = from_struct(evaluation.generation_settings)
    assert settings["chat_template"] is True
    # The template's own tokens come out of the text's budget: the prompt fits the positions.
    from transformers import AutoTokenizer

    source = training.store.get(models["instruction"]).uri.removeprefix("file://")
    tokenizer = AutoTokenizer.from_pretrained(source)
    frame = len(tokenizer(render_chat(tokenizer, ""), add_special_tokens=False)["input_ids"])
    assert frame > 0 and settings["input_token_budget"] == 64 - MAX_NEW - frame

    # raw_prompt: the text as is, which is what the same weights say without the template.
    raw = evaluate(
        tclient, models["instruction"], models["dataset"], max_examples=3, seed=5, raw_prompt=True
    )
    assert [s.output for s in raw.samples] == [models["causal_outputs"][i] for i in rows]
    assert from_struct(raw.generation_settings)["chat_template"] is False

    # A causal LM whose tokenizer has a chat template (an imported -Instruct model) reads it too.
    chat_folder = Path(training.store.get(models["instruction"]).uri.removeprefix("file://"))
    causal_chat = commit(training, chat_folder, "gen-causal-chat", "causal_lm").id
    templated = evaluate(tclient, causal_chat, models["dataset"], max_examples=3, seed=5)
    assert [s.output for s in templated.samples] == [s.output for s in evaluation.samples]
    metrics = dict(evaluation.metrics)
    assert set(metrics) == {"rouge_rouge1", "rouge_rouge2", "rouge_rougeL"}  # rouge by default
    for key, value in rescored(evaluation.samples, "rouge").items():
        assert metrics[key] == pytest.approx(value)


def test_a_long_input_plugin_reads_each_document(tclient, models):
    evaluation = evaluate(
        tclient,
        models["causal"],
        models["dataset"],
        long_inputs=spec("chunk"),
        input_token_budget=8,
        decoding=pb.DecodingOptions(
            strategy=pb.DECODING_STRATEGY_SAMPLE, seed=3, temperature=0.7, max_new_tokens=4
        ),
    )
    assert evaluation.num_examples == len(TEXTS)
    settings = from_struct(evaluation.generation_settings)
    assert settings["long_inputs"]["name"] == "chunk"
    assert settings["input_token_budget"] == 8
    # Chunked: more generation calls than one per batch of documents.
    assert settings["calls"] > 1
    assert settings["decoding"]["strategy"] == "sample"


def test_bad_generation_requests_are_refused_before_any_operation(tclient, models):
    before = operation_count(tclient)

    def refused(field: str, model: str = "causal", dataset_id: str = "", **fields) -> str:
        with pytest.raises(InvalidArgument) as caught:
            tclient.training.EvaluateModel(
                pb.EvaluateModelRequest(
                    model_id=models[model],
                    dataset=common_pb2.DatasetInput(dataset_id=dataset_id or models["dataset"]),
                    generation=generation(**fields),
                )
            )
        assert field in [
            v.field for v in caught.value.violations
        ] or caught.value.message.startswith(field), caught.value.message
        return caught.value.message

    sample = pb.DECODING_STRATEGY_SAMPLE
    refused(
        "generation.decoding.temperature",
        decoding=pb.DecodingOptions(strategy=sample, temperature=0.0),
    )
    refused("generation.decoding.max_new_tokens", decoding=pb.DecodingOptions(max_new_tokens=5000))
    refused("generation.decoding.max_new_tokens", decoding=pb.DecodingOptions(max_new_tokens=64))
    refused("generation.decoding.temperature", decoding=pb.DecodingOptions(temperature=0.5))
    assert "summary" in refused("generation.reference_column", reference_column="summary")
    refused("generation.metrics[0].name", metrics=[spec("nope")])
    refused("generation.metrics[0].config.tokenize", metrics=[spec("rouge", tokenize="x")])
    refused("generation.long_inputs.name", long_inputs=spec("nope"))
    refused("generation.input_token_budget", input_token_budget=100)
    refused("generation.samples", samples=51)
    assert "sequence_classification" in refused("generation", model="classifier")
    assert operation_count(tclient) == before


def test_a_seq2seq_model_is_scored_by_generation_without_asking(
    training, tclient, models, tmp_path
):
    """An encoder-decoder has nothing but its outputs to be scored by: EvaluateModel without
    generation options generates greedily and scores with rouge."""
    from transformers import AutoTokenizer

    source = Path(training.store.get(models["causal"]).uri.removeprefix("file://"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = tiny_t5(tokenizer)
    folder = tmp_path / "t5"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    expected = [g.text for g in generate_texts(model, tokenizer, TEXTS, DecodingOptions())]
    record = commit(training, folder, "gen-t5", "seq2seq")
    op = tclient.training.EvaluateModel(
        pb.EvaluateModelRequest(
            model_id=record.id, dataset=common_pb2.DatasetInput(dataset_id=models["dataset"])
        )
    )
    evaluation = tclient.wait(op, pb.EvaluateModelResponse, timeout=300).evaluation
    assert evaluation.num_examples == len(TEXTS)
    assert [s.output for s in evaluation.samples] == expected[:3]
    assert set(evaluation.metrics) == {"rouge_rouge1", "rouge_rouge2", "rouge_rougeL"}
    assert evaluation.perplexity == 0.0
    assert from_struct(evaluation.generation_settings)["input_token_budget"] == 512


def test_an_adapter_is_evaluated_on_its_base(training, tclient, models, tmp_path):
    """A LoRA adapter generates on its base model; the budget comes from the base's config."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(training.store.get(models["causal"]).uri.removeprefix("file://"))
    torch.manual_seed(1)
    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(source),
        LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False, fan_in_fan_out=True),
    ).eval()
    folder = tmp_path / "adapter"
    peft.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.save_pretrained(folder)
    options = DecodingOptions(max_new_tokens=MAX_NEW)
    expected = [g.text for g in generate_texts(peft, tokenizer, TEXTS, options)]
    assert expected != models["causal_outputs"]  # the adapter changes what the base says
    adapter = training.store.commit_dir(
        folder,
        kind="adapter",
        name="gen-adapter",
        metadata={
            "format": "peft_adapter",
            "task": "causal_lm",
            "base_artifact_id": models["causal"],
            "max_length": 64,
        },
        lineage=Lineage(),
    )
    evaluation = evaluate(tclient, adapter.id, models["dataset"], samples=len(TEXTS))
    assert [s.output for s in evaluation.samples] == expected
    assert from_struct(evaluation.generation_settings)["input_token_budget"] == 64 - MAX_NEW


def test_predict_answers_a_batch_as_it_answers_single_texts(training, tclient, models):
    """A tokenizer with a pad token and padding_side "right" (a typical imported model's) must
    not right-pad a decoder-only model's prompts: its outputs would continue pad tokens."""
    source = Path(training.store.get(models["causal"]).uri.removeprefix("file://"))
    folder = shutil.copytree(source, training.home / "padded")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(pad_token="<|endoftext|>", padding_side="right")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    model_id = commit(training, folder, "gen-padded", "causal_lm").id
    texts = ["the", TEXTS[0]]

    def predict(batch: list[str]) -> list[str]:
        reply = tclient.training.Predict(
            pb.PredictRequest(model_id=model_id, texts=batch, max_new_tokens=MAX_NEW)
        )
        return [p.generated_text for p in reply.predictions]

    assert predict(texts) == predict(texts[:1]) + predict(texts[1:])
    assert predict(texts) == local_outputs(source, texts)


def test_train_evaluate_generates_from_the_command_line(training, models):
    env = {
        **os.environ,
        "FORGELINE_ADDRESSES": json.dumps({"training": training.service.address}),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "train", "evaluate", "gen-causal", models["dataset"],
         "--generate", "--metric", "exact_match", "--max-new-tokens", str(MAX_NEW)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(TEXTS)} examples" in done.stdout
    assert "exact_match_exact_match 0.5000" in done.stdout

    # How long texts are read, the subset and the samples reach the service as given.
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "train", "evaluate", "gen-causal", models["dataset"],
         "--long-inputs", 'truncate={"keep": "head_tail"}', "--input-token-budget", "6",
         "--max-examples", "2", "--seed", "3", "--samples", "1", "--raw-prompt",
         "--max-new-tokens", str(MAX_NEW), "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    evaluation = json.loads(done.stdout)["evaluation"]
    settings = evaluation["generationSettings"]
    assert settings["long_inputs"]["name"] == "truncate"
    assert settings["long_inputs"]["config"]["keep"] == "head_tail"
    assert (settings["input_token_budget"], settings["max_examples"], settings["seed"]) == (6, 2, 3)
    assert int(evaluation["numExamples"]) == 2 and len(evaluation["samples"]) == 1


def test_the_training_service_lists_its_generation_plugins(tclient):
    from forgeline.services.training import SPEC

    # Loaded before the service reports SERVING, like its other kinds.
    assert {"generation_metrics", "long_inputs"} <= set(SPEC.plugin_kinds)
    for kind, names in (
        ("generation_metrics", {"rouge", "bleu", "chrf", "exact_match"}),
        ("long_inputs", {"truncate", "chunk", "extract"}),
    ):
        reply = tclient.plugins.ListPlugins(plugin_service_pb2.ListPluginsRequest(kind=kind))
        assert names <= {p.name for p in reply.plugins}


def summaries(training, rows: list[dict], name: str) -> str:
    table = pa.table(
        {"text": [r["document"] for r in rows], "summary": [r["summary"] for r in rows]}
    )
    return training.dataset(table, name, label="summary").id


def train_baseline(tclient, dataset_id: str, baseline, **fields) -> pb.TrainBaselineResponse:
    op = tclient.training.TrainBaseline(
        pb.TrainBaselineRequest(
            train=common_pb2.DatasetInput(dataset_id=dataset_id),
            eval=common_pb2.DatasetInput(dataset_id=dataset_id),
            baseline=baseline,
            **fields,
        )
    )
    return tclient.wait(op, pb.TrainBaselineResponse, timeout=300)


def test_a_summarization_baseline_is_scored_with_rouge(training, tclient):
    rows = [
        {"document": "First sentence here. Second one follows. Third closes it.",
         "summary": "First sentence here."},
        {"document": "Alpha beta gamma. Delta epsilon.", "summary": "Delta epsilon zeta."},
    ]  # fmt: skip
    dataset_id = summaries(training, rows, "tiny-summaries")
    done = train_baseline(
        tclient,
        dataset_id,
        spec("lead_k", sentences=1),
        metrics=[spec("rouge"), spec("exact_match")],
    )
    evaluation = done.evaluation
    assert evaluation.num_examples == 2
    assert [s.output for s in evaluation.samples] == ["First sentence here.", "Alpha beta gamma."]
    metrics = dict(evaluation.metrics)
    assert metrics["exact_match_exact_match"] == pytest.approx(0.5)
    assert metrics["rouge_rouge1"] == pytest.approx((1.0 + 0.0) / 2)
    assert evaluation.accuracy == 0.0 and not evaluation.confusion_matrix.labels
    assert not done.HasField("model")  # an extractive baseline stores nothing

    # A classifier baseline refuses generation metrics; a missing reference column is named.
    with pytest.raises(InvalidArgument) as caught:
        train_baseline(tclient, dataset_id, spec("tfidf_logreg"), metrics=[spec("rouge")])
    assert caught.value.violations[0].field in ("metrics", "train.label_column")
    no_summary = training.dataset(pa.table({"text": ["a. b."]}), "no-summary", label="")
    with pytest.raises(InvalidArgument) as caught:
        train_baseline(tclient, no_summary.id, spec("lead_k"))
    assert caught.value.violations[0].field == "train.target_column"
    with pytest.raises(InvalidArgument) as caught:
        train_baseline(tclient, dataset_id, spec("lead_k"), metrics=[spec("nope")])
    assert caught.value.violations[0].field == "metrics[0].name"


@pytest.mark.slow
def test_lead_k_and_textrank_on_in_abs_judgments(training, tclient):
    path = shared_data("summarization/in_abs_test.jsonl")
    with path.open() as lines:
        rows = [json.loads(line) for _, line in zip(range(10), lines, strict=False)]
    dataset_id = summaries(training, rows, "in-abs-test-10")
    scores = {}
    for name in ("lead_k", "textrank"):
        done = train_baseline(tclient, dataset_id, spec(name, max_words=500, sentences=None))
        assert done.evaluation.num_examples == 10
        scores[name] = dict(done.evaluation.metrics)
        # The service's numbers are the rouge plugin's on the same summaries, computed here.
        plugin = PluginRegistry().create(
            "baselines", name, {"max_words": 500, "sentences": None}, "b"
        )
        texts = [r["document"] for r in rows]
        predicted = plugin.fit_predict([], [], texts, _context()).predictions
        expected = rescored_pairs(predicted, [r["summary"] for r in rows])
        for key, value in expected.items():
            assert scores[name][key] == pytest.approx(value)
    print(json.dumps(scores, indent=1))  # the numbers the report quotes
    for values in scores.values():
        assert 0.1 < values["rouge_rougeL"] < 0.6  # real extractive summaries of judgments


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["truncate", "extract", "chunk"])
def test_long_judgments_are_read_within_the_budget(training, tclient, models, strategy):
    path = shared_data("summarization/in_abs_test.jsonl")
    with path.open() as lines:
        rows = [json.loads(line) for _, line in zip(range(3), lines, strict=False)]
    name = f"in-abs-test-3-{strategy}"
    dataset_id = training.dataset(
        pa.table({"text": [r["document"] for r in rows], "target": [r["summary"] for r in rows]}),
        name,
        label="",
    ).id
    evaluation = evaluate(
        tclient,
        models["causal"],
        dataset_id,
        long_inputs=spec(strategy),
        decoding=pb.DecodingOptions(max_new_tokens=4),
    )
    settings = from_struct(evaluation.generation_settings)
    assert evaluation.num_examples == 3
    assert settings["input_token_budget"] == 60
    # Every input was at most the budget (no template: the text is the prompt); chunk reads a
    # judgment in many inputs, the others in one.
    assert settings["prompt_tokens"] <= 60 * settings["inputs"]
    if strategy == "chunk":
        assert settings["inputs"] > 3
    else:
        assert settings["inputs"] == 3 and settings["prompt_tokens"] > 3 * 50
    assert 0.0 <= evaluation.metrics["rouge_rougeL"] <= 1.0


def _context():
    from forgeline.registry import BaselineContext

    return BaselineContext()


def rescored_pairs(predictions: list[str], references: list[str]) -> dict[str, float]:
    plugin = PluginRegistry().create("generation_metrics", "rouge", {}, "m")
    return {f"rouge_{k}": v for k, v in plugin.score(predictions, references).corpus.items()}
