"""CompressionService over gRPC on tiny trained classifiers: each compressor, a chain that hits
its budget (rolled back, the rest skipped), an adapter merged first, outputs that standard
loaders read, and every refusal before work starts."""

from __future__ import annotations

import numpy as np
import pytest
import transformers

from forgeline import modelio
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.testing.classifiers import reviews
from forgeline.v1 import common_pb2
from forgeline.v1 import compression_service_pb2 as pb
from tests.fixtures import spec
from tests.waiting import wait_done

KEPT, ROLLED_BACK, SKIPPED = (
    pb.STEP_OUTCOME_KEPT,
    pb.STEP_OUTCOME_ROLLED_BACK,
    pb.STEP_OUTCOME_SKIPPED,
)

FAST = pb.LatencyOptions(single_runs=10, batch_size=8, batch_runs=2, threads=1)


def request(models, *compressors, model_id: str = "", **fields) -> pb.CompressModelRequest:
    return pb.CompressModelRequest(
        model_id=model_id or models.full.id,
        eval=common_pb2.DatasetInput(dataset_id=models.eval.id),
        train=common_pb2.DatasetInput(dataset_id=models.train.id),
        compressors=list(compressors),
        latency=FAST,
        **fields,
    )


def compress(client, req) -> pb.CompressModelResponse:
    return wait_done(client, client.compression.CompressModel(req), pb.CompressModelResponse)


def path_of(artifact) -> str:
    return artifact.uri.removeprefix("file://")


def eval_inputs(folder: str):
    texts, labels = reviews(4, offset=50)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return dict(tokenizer(texts, padding=True, return_tensors="np")), labels


def test_dynamic_int8_shrinks_the_linear_weights_and_keeps_the_accuracy(compressor, models):
    done = compress(compressor, request(models, spec("dynamic_int8"), budget_metric="f1_macro"))
    original, (step,) = done.original, done.steps
    assert original.format == "hf" and original.accuracy == 1.0 and original.num_examples == 40
    assert original.latency_p50_ms > 0 and original.throughput > 0 and original.batch_size == 8
    assert step.outcome == KEPT and step.compressor == "dynamic_int8"
    m = step.measurement
    assert m.format == "hf_int8" and m.accuracy >= 0.975
    assert step.linear_size_ratio == pytest.approx(
        m.linear_weight_bytes / original.linear_weight_bytes
    )
    assert step.linear_size_ratio < 0.3 and step.size_ratio < 1.0
    assert m.parameters == original.parameters
    assert step.details["quantized_linears"] > 0
    assert done.model.id == step.model.id and done.size_ratio == step.size_ratio
    assert done.budget_metric == "f1_macro" and done.accuracy_budget == 0.01
    assert not done.budget_exceeded
    # Lineage to the original; int8 weights in safetensors, loaded back by forgeline.modelio.
    lineage = step.model.lineage
    assert lineage.parent_ids == [models.full.id]
    assert lineage.producer == "forgeline.v1.CompressionService/CompressModel"
    assert lineage.config["compressor"] == "dynamic_int8"
    assert step.model.metadata["measurement"]["accuracy"] == m.accuracy
    inputs, labels = eval_inputs(path_of(step.model))
    predicted = modelio.load_classifier(path_of(step.model)).logits(inputs).argmax(-1)
    names = step.model.metadata["labels"]
    assert np.mean([names[i] == y for i, y in zip(predicted, labels, strict=True)]) == m.accuracy


def test_onnx_export_writes_a_file_onnx_runtime_runs_alone(compressor, models):
    import onnxruntime

    done = compress(compressor, request(models, spec("onnx_export")))
    (step,) = done.steps
    assert step.outcome == KEPT and step.measurement.format == "onnx"
    assert step.details["export_max_abs_diff"] < 1e-3 and step.details["quantized"] is True
    assert step.linear_size_ratio < 0.4 and step.size_ratio < 0.75  # a tiny graph: overhead
    assert step.measurement.accuracy >= 0.975
    # No forgeline code: ONNX Runtime and the tokenizer saved beside the graph.
    folder = path_of(step.model)
    session = onnxruntime.InferenceSession(f"{folder}/model.onnx")
    inputs, labels = eval_inputs(folder)
    feed = {i.name: inputs[i.name].astype(np.int64) for i in session.get_inputs()}
    predicted = session.run(None, feed)[0].argmax(-1)
    config = transformers.AutoConfig.from_pretrained(folder)
    accuracy = np.mean(
        [config.id2label[int(i)] == y for i, y in zip(predicted, labels, strict=True)]
    )
    assert accuracy == step.measurement.accuracy


def test_structured_prune_removes_heads_and_neurons_physically(compressor, models):
    done = compress(
        compressor,
        request(
            models,
            spec(
                "structured_prune",
                heads_fraction=0.5,
                neurons_fraction=0.5,
                neurons_multiple_of=1,
            ),
        ),
    )
    (step,) = done.steps
    details = step.details
    assert details["heads_before"] == 8 and details["heads_after"] == 4
    assert details["neurons_before"] == 128 and details["neurons_after"] == 64
    assert step.measurement.format == "hf_pruned"
    assert step.measurement.parameters < done.original.parameters
    assert step.measurement.linear_weight_bytes < done.original.linear_weight_bytes
    model = modelio.load_torch(path_of(step.model))
    assert [s["heads"] for s in modelio.shapes(model)] == [s["heads"] for s in details["layers"]]


@pytest.mark.slow
def test_a_chain_that_breaks_its_budget_rolls_back_and_stops(compression, compressor, models):
    """The second step distils into a one-layer student, 8 wide, trained for one epoch at a
    learning rate too small to learn anything, on Ray Train: it cannot match the teacher."""
    op = compressor.compression.CompressModel(
        request(
            models,
            spec("structured_prune", heads_fraction=0.0, neurons_fraction=0.05),
            spec(
                "distill",
                init="config",
                layers=1,
                hidden_size=8,
                attention_heads=1,
                epochs=1,
                learning_rate=1e-7,
            ),
            spec("onnx_export"),
            accuracy_budget=0.0,
            output_name="chained",
        )
    )
    done = wait_done(compressor, op, pb.CompressModelResponse)
    first, student, exported = done.steps
    assert first.outcome == KEPT and first.accuracy_delta == 0.0
    assert first.model.metadata["format"] == "hf_pruned"
    assert student.outcome == ROLLED_BACK and not student.HasField("model")
    assert student.accuracy_delta < 0 and student.measurement.accuracy < 1.0
    assert student.measurement.parameters < first.measurement.parameters
    assert student.details["student_layers"] == 1 and "train_loss" in student.details
    assert "rolled back" in student.reason and "budget of 0.00" in student.reason
    assert exported.outcome == SKIPPED and exported.reason == student.reason
    assert not exported.HasField("measurement")
    assert done.budget_exceeded and done.model.id == first.model.id
    assert done.accuracy_delta == 0.0 and done.size_ratio == first.size_ratio
    # The rolled-back output was discarded: only the kept step became an artifact.
    assert compression.store.get(first.model.id).name == "chained-structured_prune"
    assert compression.store.find_by_request_id(f"{op.name}/step2") is None
    # The student's training curve streamed under the step's name; measurements by step.
    events = compressor.stream_events(op.name, follow=False)
    names = {p.name for e in events if e.HasField("metrics") for p in e.metrics.points}
    assert {"step2/loss", "accuracy", "size_ratio", "latency_p50_ms"} <= names


def test_an_adapter_is_merged_into_its_base_first(compressor, models):
    done = compress(compressor, request(models, spec("dynamic_int8"), model_id=models.adapter.id))
    assert done.original.format == "hf" and done.original.accuracy == 1.0
    (step,) = done.steps
    assert step.outcome == KEPT and step.measurement.accuracy >= 0.975
    assert step.model.lineage.parent_ids == [models.adapter.id]
    assert step.model.metadata["compressed_from"] == models.adapter.id


# --- refused before any work -------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_models(compression, models, tmp_path_factory):
    """A model folder holding a pickle, a GPT-2 classifier, a causal LM, a seq2seq model, a
    text-only dataset."""
    import shutil

    import pyarrow as pa

    from forgeline.artifacts import Lineage
    from forgeline.finetune.build import build_from_config

    work = tmp_path_factory.mktemp("odd")
    store = compression.store
    pickled = shutil.copytree(path_of_record(models.full), work / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    meta = dict(models.full.metadata)
    gpt2 = build_from_config(
        "gpt2", {"n_layer": 1, "n_embd": 16, "n_head": 2}, reviews(2)[0], 300, work / "gpt2"
    )
    return {
        "pickled": store.commit_dir(
            pickled, kind="model", name="pickled", metadata=meta, lineage=Lineage()
        ).id,
        "gpt2": store.commit_dir(
            gpt2, kind="model", name="gpt2", metadata=meta, lineage=Lineage()
        ).id,
        "causal": store.commit_dir(
            shutil.copytree(path_of_record(models.full), work / "causal"),
            kind="model",
            name="causal",
            metadata={**meta, "task": "causal_lm"},
            lineage=Lineage(),
        ).id,
        "seq2seq": store.commit_dir(
            shutil.copytree(path_of_record(models.full), work / "seq2seq"),
            kind="model",
            name="seq2seq",
            metadata={**meta, "task": "seq2seq"},
            lineage=Lineage(),
        ).id,
        "texts": compression.dataset(pa.table({"text": ["a", "b"]}), "texts", label="").id,
        "other_labels": compression.dataset(
            pa.table({"text": ["a", "b"], "label": ["neg", "maybe"]}), "other-labels"
        ).id,
    }


def path_of_record(record) -> str:
    return record.uri.removeprefix("file://")


PRUNE = spec("structured_prune")
REFUSALS = {
    "unknown model": (dict(model_id="mdl_nope"), NotFound, "model_id"),
    "a dataset as the model": (dict(model_id="@train"), FailedPrecondition, "NOT_A_MODEL"),
    "a pickle in the folder": (dict(model_id="pickled"), FailedPrecondition, "PICKLE_REFUSED"),
    "a seq2seq model": (dict(model_id="seq2seq"), FailedPrecondition, "NOT_A_CLASSIFIER"),
    # A causal LM is compressed by what applies to it (dynamic_int8), never pruned.
    "pruning a causal LM": (
        dict(model_id="causal"),
        FailedPrecondition,
        "COMPRESSOR_NOT_APPLICABLE",
    ),
    "pruning GPT-2": (dict(model_id="gpt2"), FailedPrecondition, "COMPRESSOR_NOT_APPLICABLE"),
    "eval without labels": (dict(eval="texts"), InvalidArgument, "eval.label_column"),
    "eval labels unknown": (dict(eval="other_labels"), InvalidArgument, "eval.label_column"),
    "no compressors": (dict(compressors=[]), InvalidArgument, "compressors"),
    "unknown compressor": (
        dict(compressors=[spec("zip")]),
        InvalidArgument,
        "compressors[0].name",
    ),
    "bad config": (
        dict(compressors=[spec("structured_prune", heads_fraction=1.5)]),
        InvalidArgument,
        "compressors[0].config.heads_fraction",
    ),
    "onnx before int8": (
        dict(compressors=[spec("onnx_export"), spec("dynamic_int8")]),
        InvalidArgument,
        "compressors[1].name",
    ),
    "pruning without train rows": (dict(train=None), InvalidArgument, "train"),
    "budget over 1": (dict(accuracy_budget=1.5), InvalidArgument, "accuracy_budget"),
    "unknown budget metric": (dict(budget_metric="auc"), InvalidArgument, "budget_metric"),
    "negative batch size": (
        dict(latency=pb.LatencyOptions(batch_size=-1)),
        InvalidArgument,
        "latency.batch_size",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_request_is_refused_naming_the_problem(case, compressor, models, odd_models):
    changes, error, named = REFUSALS[case]
    req = request(models, PRUNE)
    for key, value in changes.items():
        if key == "model_id":
            value = models.train.id if value == "@train" else odd_models.get(value, value)
            req.model_id = value
        elif key == "eval":
            req.eval.dataset_id = odd_models[value]
        elif key == "train":
            req.ClearField("train")
        elif key == "compressors":
            del req.compressors[:]
            req.compressors.extend(value)
        elif key == "latency":
            req.latency.CopyFrom(value)
        else:
            setattr(req, key, value)
    with pytest.raises(error) as err:
        compressor.compression.CompressModel(req)
    assert named in str(err.value) or named == getattr(err.value, "reason", None)
