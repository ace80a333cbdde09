"""Generative models through the services that began classifier-only, over gRPC on real servers:
a TuneModel of an instruction SFT of a tiny llama (two trials ranked by eval perplexity, the best
trial's adapter back), a tiny llama causal LM compressed to int8 and measured by perplexity, a
continual update of a generative model refused before any work, Predict on a seq2seq model (the
decoder's whole output, no prompt cut off), the generation batch cap of EvaluateModel, and the
column flags of `forgeline train run` / `forgeline tune` (and train run's --long-inputs and
--input-token-budget) reaching the requests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
from google.protobuf import struct_pb2

from forgeline import modelio
from forgeline.artifacts import Lineage
from forgeline.convert import struct
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.models import read_manifest
from forgeline.v1 import common_pb2
from forgeline.v1 import compression_service_pb2 as cpb
from forgeline.v1 import memory_service_pb2 as mpb
from forgeline.v1 import training_service_pb2 as tpb
from forgeline.v1 import tuning_service_pb2 as pb
from tests.cli_runner import forgeline
from tests.fixtures import spec
from tests.integration.training.test_generation_evaluation import operation_count
from tests.tiny_llm import tiny_llama_folder, tiny_t5
from tests.waiting import wait_done

TINY_LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
# Word-level texts the tiny llama's tokenizer (w1..w60) reads token for token.
TEXTS = [" ".join(f"w{(i * 7 + j) % 60 + 1}" for j in range(6 + i % 5)) for i in range(12)]


def dataset(workspace, table: pa.Table, name: str, text: str = "") -> str:
    return workspace.datasets.save(
        table, name=name, text_column=text, label_column="", lineage=Lineage()
    ).id


def tiny_llama(workspace, task: str, name: str) -> str:
    """The tests' tiny llama (tests/tiny_llm.py) as a model artifact of ``task``."""
    folder = tiny_llama_folder(workspace.home / "staging" / name)
    return workspace.store.commit_dir(
        folder,
        kind="model",
        name=name,
        metadata={"format": "hf", "task": task, "max_length": 64},
        lineage=Lineage(),
    ).id


# --- tuning --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tuning_an_instruction_sft_ranks_trials_by_eval_perplexity(tuning, tuner):
    pairs = pa.table({"prompt": TEXTS, "response": [t.split()[0] for t in TEXTS]})
    train = dataset(tuning, pairs, "sft-tune-train")
    held_out = dataset(tuning, pairs.slice(0, 4), "sft-tune-eval")
    done = wait_done(
        tuner,
        tuner.tuning.TuneModel(
            pb.TuneModelRequest(
                training=tpb.TrainModelRequest(
                    train=common_pb2.DatasetInput(dataset_id=train),
                    eval=common_pb2.DatasetInput(dataset_id=held_out),
                    model=tpb.ModelSource(
                        from_config=tpb.ModelFromConfig(
                            model_type="llama", config=struct(TINY_LLAMA), vocab_size=300
                        )
                    ),
                    task=tpb.TASK_INSTRUCTION,
                    finetune=spec("lora", r=4),
                    hyper_parameters=common_pb2.HyperParameters(
                        batch_size_per_worker=6, epochs=2, seed=1, max_sequence_length=32
                    ),
                ),
                search_space=[
                    pb.SearchParameter(
                        name="hyper_parameters.learning_rate",
                        choice=pb.ChoiceValues(
                            values=[struct_pb2.Value(number_value=v) for v in (1e-3, 3e-2)]
                        ),
                    )
                ],
                objectives=[
                    pb.Objective(
                        metric="eval_perplexity", direction=pb.OBJECTIVE_DIRECTION_MINIMIZE
                    )
                ],
                searcher=spec("grid"),
                scheduler=spec("fifo"),
                max_concurrent_trials=2,
                output_name="sft-tuned",
            )
        ),
        pb.TuneModelResponse,
    )
    assert done.completed_trials == len(done.trials) == 2
    assert [o.metric for o in done.objectives] == ["eval_perplexity"]
    for trial in done.trials:
        metrics = trial.metrics
        assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
        assert trial.objective_history[-1] == pytest.approx(metrics["eval_perplexity"])
    best = min(done.trials, key=lambda t: t.metrics["eval_perplexity"])
    assert done.best_trial.id == best.id
    # The best trial's adapter, an instruction model with lineage to the search.
    assert done.model.kind == common_pb2.ARTIFACT_KIND_ADAPTER
    assert done.model.lineage.producer == "forgeline.v1.TuningService/TuneModel"
    folder = tuning.store.verify(tuning.store.get(done.model.id))
    assert read_manifest(folder)["task"] == "instruction"


# --- compression ---------------------------------------------------------------------------------


def compress(compressor, model_id: str, eval_id: str, budget: float) -> cpb.CompressModelResponse:
    return wait_done(
        compressor,
        compressor.compression.CompressModel(
            cpb.CompressModelRequest(
                model_id=model_id,
                eval=common_pb2.DatasetInput(dataset_id=eval_id),
                compressors=[spec("dynamic_int8")],
                accuracy_budget=budget,
                latency=cpb.LatencyOptions(single_runs=3, batch_size=4, batch_runs=1),
            )
        ),
        cpb.CompressModelResponse,
    )


def local_loss(model, folder: Path) -> float:
    """transformers' own next-token loss of ``model`` (its tokenizer in ``folder``), one text at
    a time (no padding), averaged over the predicted tokens: computed here, not by the
    service."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    nll, counted = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            nll += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
            counted += ids.shape[1] - 1
    return nll / counted


def test_a_causal_lm_is_compressed_to_int8_and_measured_by_perplexity(compression, compressor):
    from transformers import AutoModelForCausalLM

    model_id = tiny_llama(compression, "causal_lm", "tiny-lm-int8")
    eval_id = dataset(compression, pa.table({"text": TEXTS}), "lm-eval", text="text")
    done = compress(compressor, model_id, eval_id, budget=0.5)
    assert done.budget_metric == "perplexity" and done.accuracy_budget == 0.5
    original, (step,) = done.original, done.steps
    assert original.perplexity == pytest.approx(math.exp(original.loss)) and original.loss > 0
    assert original.accuracy == 0 and original.num_examples == len(TEXTS)
    assert step.outcome == cpb.STEP_OUTCOME_KEPT and step.measurement.format == "hf_int8"
    assert step.perplexity_ratio == pytest.approx(math.exp(step.measurement.loss - original.loss))
    assert step.accuracy_delta == pytest.approx(1 - step.perplexity_ratio)
    assert step.linear_size_ratio < 0.5 and step.size_ratio < 1
    assert done.model.id == step.model.id and done.perplexity_ratio == step.perplexity_ratio
    # The losses are the models' own: the original's as transformers computes it, and the int8
    # folder's once loaded back as a causal LM (the task from its format file).
    source = compression.store.verify(compression.store.get(model_id))
    original_model = AutoModelForCausalLM.from_pretrained(source).eval()
    assert local_loss(original_model, source) == pytest.approx(original.loss, rel=1e-4)
    record = compression.store.get(step.model.id)
    assert record.metadata["task"] == "causal_lm" and record.metadata["format"] == "hf_int8"
    folder = compression.store.verify(record)
    quantized = modelio.load_torch(folder)
    assert type(quantized).__name__ == "LlamaForCausalLM"
    # Dynamic int8 quantizes activations with each batch's own range, so the service's padded
    # batches and single texts here differ a little (1e-4 relative when written).
    assert local_loss(quantized, folder) == pytest.approx(step.measurement.loss, rel=1e-3)

    # No budget at all: the step is kept only if perplexity did not rise.
    strict = compress(compressor, model_id, eval_id, budget=0.0)
    rose = strict.steps[0].perplexity_ratio > 1 + 1e-9
    expected = cpb.STEP_OUTCOME_ROLLED_BACK if rose else cpb.STEP_OUTCOME_KEPT
    assert strict.steps[0].outcome == expected
    if rose:
        assert "raised perplexity by" in strict.steps[0].reason
        assert strict.model.id == model_id and strict.perplexity_ratio == 1.0


# --- continual updates ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["causal_lm", "instruction", "seq2seq"])
def test_a_continual_update_of_a_generative_model_is_refused_before_any_work(
    memory_service, mem, task
):
    model_id = tiny_llama(memory_service, task, f"continual-{task}")
    rows = dataset(
        memory_service, pa.table({"text": TEXTS, "label": ["a", "b"] * 6}), f"cl-{task}", "text"
    )
    memory = f"generative-{task.replace('_', '-')}"
    with pytest.raises(FailedPrecondition) as caught:
        mem.memory.ContinualUpdate(
            mpb.ContinualUpdateRequest(
                memory=memory,
                model_id=model_id,
                new_data=common_pb2.DatasetInput(dataset_id=rows),
                create_memory=mpb.CreateMemoryRequest(
                    embedding=mpb.EmbeddingSource(builtin="minilm-l6")
                ),
            )
        )
    error = caught.value
    assert error.reason == "NOT_A_CLASSIFIER"
    assert f"model_id: {model_id} is a generative {task} model" in str(error)
    assert "accuracy" in str(error) and "TrainModel" in str(error)
    with pytest.raises(NotFound):  # the memory it would have created does not exist
        mem.memory.GetMemoryStats(mpb.GetMemoryStatsRequest(memory=memory))


# --- Predict and EvaluateModel on a seq2seq model ------------------------------------------------


@pytest.fixture(scope="module")
def t5(training, tmp_path_factory) -> dict[str, str]:
    """A tiny random T5 sharing the tiny llama's word-level tokenizer, as a seq2seq model."""
    from transformers import AutoTokenizer

    work = tmp_path_factory.mktemp("seq2seq-predict")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_folder(work / "llama"))
    model = tiny_t5(tokenizer)
    folder = work / "t5"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = training.store.commit_dir(
        folder,
        kind="model",
        name="tiny-t5-predict",
        metadata={"format": "hf", "task": "seq2seq", "max_length": 64},
        lineage=Lineage(),
    )
    table = pa.table({"text": TEXTS, "target": TEXTS[::-1]})
    return {"model": record.id, "dataset": dataset(training, table, "t5-rows", text="text")}


def test_predict_on_a_seq2seq_model_returns_the_whole_decoder_output(training, tclient, t5):
    """An encoder-decoder's output does not repeat its input: cutting off as many tokens as
    the prompt has (right for a decoder-only model) would drop the answer's start, or all of
    it. Each text alone, so both sides compute exactly the same thing."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = training.store.verify(training.store.get(t5["model"]))
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in TEXTS[:3]:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False, num_beams=1)
        expected = tokenizer.decode(out[0], skip_special_tokens=True)
        assert expected.strip(), text  # an answer to lose
        reply = tclient.training.Predict(
            tpb.PredictRequest(model_id=t5["model"], texts=[text], max_new_tokens=12)
        )
        assert [p.generated_text for p in reply.predictions] == [expected]


def test_a_generating_evaluation_over_the_batch_cap_is_refused_naming_batch_size(
    training, tclient, t5
):
    before = operation_count(tclient)
    for batch_size, decoding in (
        (65, tpb.DecodingOptions()),
        (8, tpb.DecodingOptions(strategy=tpb.DECODING_STRATEGY_BEAM, num_beams=16)),
    ):
        with pytest.raises(InvalidArgument) as caught:
            tclient.training.EvaluateModel(
                tpb.EvaluateModelRequest(
                    model_id=t5["model"],
                    dataset=common_pb2.DatasetInput(dataset_id=t5["dataset"]),
                    batch_size=batch_size,
                    generation=tpb.GenerationEvaluation(decoding=decoding),
                )
            )
        assert "batch_size" in str(caught.value) and "limit of 64 sequences" in str(caught.value)
    assert operation_count(tclient) == before


# --- the CLI's column flags ----------------------------------------------------------------------

LLAMA_OPTIONS = (
    "--model", "config:llama", "--model-config", json.dumps(TINY_LLAMA), "--vocab-size", "300",
)  # fmt: skip


def test_train_run_and_tune_send_the_column_flags(training, tuning):
    """Each refusal names a column only its flag could have named: the flags reached the train
    and eval inputs of the requests."""
    pairs = pa.table({"prompt": TEXTS, "response": TEXTS})
    qa = pa.table({"question": TEXTS, "answer": TEXTS})
    for space in (training, tuning):
        dataset(space, pairs, "cli-pairs")
        dataset(space, qa, "cli-qa")
    cases = [  # (arguments, the field refused, the column it names)
        (("cli-pairs", "--task", "instruction", "--prompt-column", "question"),
         "train.prompt_column", "question"),
        (("cli-qa", "--eval", "cli-pairs", "--task", "instruction", "--prompt-column",
          "question", "--response-column", "answer"),
         "eval.prompt_column", "question"),
        (("cli-pairs", "--task", "seq2seq", "--text-column", "prompt", "--target-column",
          "summary"),
         "train.target_column", "summary"),
        (("cli-pairs", "--task", "instruction", "--messages-column", "conversation"),
         "train.messages_column", "conversation"),
    ]  # fmt: skip
    for args, field, column in cases:
        done = forgeline(
            {"training": training.service.address},
            "train", "run", *args, *LLAMA_OPTIONS,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout
        assert field in done.stderr and repr(column) in done.stderr, done.stderr
    tuned = forgeline(
        {"tuning": tuning.service.address},
        "tune", "cli-pairs", "--param", "hyper_parameters.learning_rate=choice:[0.001,0.01]",
        "--task", "instruction", "--response-column", "reply", *LLAMA_OPTIONS,
    )  # fmt: skip
    assert tuned.returncode == 1, tuned.stdout
    assert "training.train.response_column" in tuned.stderr, tuned.stderr
    assert "'reply'" in tuned.stderr, tuned.stderr


def test_train_run_and_tune_send_the_long_inputs_flags(training, tuning):
    """Each refusal names a field only --long-inputs (its plugin name, its config) or
    --input-token-budget could have set: both reached TrainModelRequest, and through tune its
    training template."""
    dataset(training, pa.table({"prompt": TEXTS, "response": TEXTS}), "cli-long")
    dataset(tuning, pa.table({"prompt": TEXTS, "response": TEXTS}), "cli-long")
    cases = [  # (arguments, the field refused, what the refusal says)
        (("--long-inputs", "chunk"), "long_inputs.name", "'chunk' reads a document in several"),
        (("--long-inputs", 'truncate={"keep": "sideways"}'), "long_inputs.config.keep",
         "'head' or 'head_tail'"),
        (("--input-token-budget", "200", "--max-length", "64"), "input_token_budget",
         "200 prompt tokens leave no room"),
    ]  # fmt: skip
    for args, field, said in cases:
        done = forgeline(
            {"training": training.service.address},
            "train", "run", "cli-long", "--task", "instruction", "--batch-size", "4", *args,
            *LLAMA_OPTIONS,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout
        assert field in done.stderr and said in done.stderr, done.stderr
        tuned = forgeline(
            {"tuning": tuning.service.address},
            "tune", "cli-long", "--param", "hyper_parameters.learning_rate=choice:[0.001,0.01]",
            "--task", "instruction", "--batch-size", "4", *args, *LLAMA_OPTIONS,
        )  # fmt: skip
        assert tuned.returncode == 1, tuned.stdout
        assert f"training.{field}" in tuned.stderr and said in tuned.stderr, tuned.stderr
