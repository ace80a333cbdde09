"""The run report: its JSON twin from a run and its events, and the page drawn from the JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from google.protobuf import json_format

from forgeline.gateway import report
from forgeline.v1 import (
    common_pb2,
    compression_service_pb2,
    event_service_pb2,
    memory_service_pb2,
    safety_service_pb2,
    tuning_service_pb2,
)
from forgeline.v1 import pipeline_service_pb2 as pb


def artifact(id_: str, parents: list[str]) -> dict:
    return {
        "id": id_,
        "kind": "ARTIFACT_KIND_DATASET",
        "uri": f"file:///tmp/{id_}",
        "sha256": "ab" * 32,
        "size_bytes": "2048",
        "lineage": {"parent_ids": parents, "producer": "forgeline.v1.DataService/CleanDataset"},
    }


def run() -> pb.PipelineRun:
    out = pb.PipelineRun(
        name="operations/r1",
        pipeline="demo",
        state=common_pb2.OPERATION_STATE_FAILED,
        message="step evaluate failed: gate failed: accuracy = 0.7, 0.1 below the gate >= 0.8",
        attempt=1,
        pipeline_yaml="steps: [] # <b>",
    )
    clean = pb.StepRun(name="clean", call="data.CleanDataset", state=pb.STEP_STATE_SUCCEEDED)
    json_format.ParseDict(
        {
            "dataset": {"artifact": artifact("ds_clean", ["ds_raw"])},
            "steps": [
                {"cleaner": "dedup_exact", "rows_in": "100", "rows_out": "60", "seconds": 0.5},
                {"cleaner": "length_filter", "rows_in": "60", "rows_out": "55"},
            ],
        },
        clean.response,
    )
    evaluate = pb.StepRun(
        name="evaluate",
        call="training.EvaluateModel",
        state=pb.STEP_STATE_FAILED,
        message="<script>alert(1)</script>",
        gates=[
            pb.GateResult(
                expression="accuracy >= 0.8",
                passed=False,
                value=0.7,
                message="accuracy = 0.7, 0.1 below the gate >= 0.8",
            )
        ],
    )
    json_format.ParseDict(
        {
            "evaluation": {
                "num_examples": "10",
                "accuracy": 0.7,
                "f1_macro": 0.69,
                "confusion_matrix": {"labels": ["neg", "pos"], "counts": ["4", "1", "2", "3"]},
            }
        },
        evaluate.response,
    )
    out.steps.extend([clean, evaluate])
    return out


def events() -> list[event_service_pb2.Event]:
    out = []
    for step in range(1, 61):
        event = event_service_pb2.Event(step="train")
        event.metrics.points.add(name="loss", value=1.0 / step, step=step)
        event.metrics.points.add(name="rows", value=5, step=0)  # not a per-step series
        out.append(event)
    out.append(event_service_pb2.Event(step=""))  # the run's own events are not a step's
    return out


def test_the_json_twin_holds_every_step_series_and_artifact_with_its_lineage():
    doc = report.document(run(), events())
    assert doc["state"] == "FAILED" and doc["run"] == "operations/r1"
    assert [s["name"] for s in doc["steps"]] == ["clean", "evaluate"]
    assert doc["steps"][1]["gates"][0]["passed"] is False
    assert doc["series"] == {"train": {"loss": [[s, 1.0 / s] for s in range(1, 61)]}}
    assert doc["artifacts"] == [
        {
            "step": "clean",
            "field": "dataset.artifact",
            "id": "ds_clean",
            "kind": "dataset",
            "uri": "file:///tmp/ds_clean",
            "sha256": "ab" * 32,
            "size_bytes": 2048,
            "parent_ids": ["ds_raw"],
            "producer": "forgeline.v1.DataService/CleanDataset",
            "split": "",
        }
    ]
    json.dumps(doc)  # the twin is plain JSON


def test_the_page_draws_the_funnel_the_confusion_matrix_and_the_curves_self_contained():
    doc = report.document(run(), events())
    page = report.render(doc)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions == [
        "Confusion matrix — evaluate",
        "Metrics per training step — train",
        "Cleaning funnel — clean",
    ]
    assert page.count("<svg") == 3
    # The confusion matrix's counts and the funnel's rows are drawn as text in the SVG.
    for drawn in (">4<", ">3<", ">100<", ">55<"):
        assert drawn in page
    assert "0.1 below the gate &gt;= 0.8" in page
    # Step messages and the pipeline are escaped; nothing is fetched from elsewhere.
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert report.render(doc) == page  # the same run draws the same page


def test_a_run_without_results_still_has_a_page(tmp_path):
    bare = pb.PipelineRun(name="operations/r2", pipeline="empty")
    bare.steps.add(name="only", state=pb.STEP_STATE_SKIPPED, message="skipped: cancelled")
    doc = report.document(bare, [])
    report.write(doc, tmp_path / "out")
    page = (tmp_path / "out" / report.REPORT_HTML).read_text()
    assert "<svg" not in page and "skipped: cancelled" in page
    assert json.loads((tmp_path / "out" / report.REPORT_JSON).read_text()) == doc


# --- a hyper-parameter search (TuningService/TuneModel) ------------------------------------------

# number: (state, learning rate, LoRA r, eval_loss after each epoch)
TRIALS = {
    1: ("COMPLETED", 0.0012, 8, [0.9, 0.7, 0.55]),
    2: ("STOPPED_EARLY", 0.05, 4, [1.3]),
    3: ("COMPLETED", 0.0004, 16, [0.8, 0.6, 0.42]),
    4: ("FAILED", 0.1, 32, []),
    5: ("STOPPED_EARLY", 0.02, 8, [1.1, 0.95]),
    6: ("COMPLETED", 0.0008, 4, [0.85, 0.62, 0.48]),
}


def tuning(metric="eval_loss", importances=True, pareto_front=()) -> dict:
    """A TuneModelResponse as the orchestrator keeps it (proto JSON), searching ``metric``
    (eval_loss, or eval_accuracy = 1 - eval_loss); trial 3 is the best either way."""

    def objective(loss: float) -> float:
        return loss if metric == "eval_loss" else round(1 - loss, 6)

    trials = []
    for number, (state, lr, r, losses) in TRIALS.items():
        metrics = {}
        if losses:
            metrics = {
                "eval_loss": losses[-1],
                "eval_accuracy": round(1 - losses[-1], 6),
                "loss": losses[-1] + 0.05,
                "progress": 1.0 if state == "COMPLETED" else len(losses) / 3,
                "trainable_parameters": 1000.0 * r,
            }
        trials.append(
            {
                "id": f"t{number}",
                "number": number,
                "state": f"TRIAL_STATE_{state}",
                "parameters": {"hyper_parameters.learning_rate": lr, "finetune.config.r": r},
                "metrics": metrics,
                "objective_history": [objective(v) for v in losses],
                "iterations": len(losses),
                "seconds": 12.5 * len(losses),
                "error": "RuntimeError: CUDA out of memory" if state == "FAILED" else "",
                "pareto_optimal": f"t{number}" in pareto_front,
            }
        )
    best = trials[2]
    message = tuning_service_pb2.TuneModelResponse()
    json_format.ParseDict(
        {
            "best_trial": best,
            "best_parameters": best["parameters"],
            "best_metrics": best["metrics"],
            "trials": trials,
            "pareto_front": list(pareto_front),
            "parameter_importances": (
                {"hyper_parameters.learning_rate": 0.83, "finetune.config.r": 0.17}
                if importances
                else {}
            ),
            "completed_trials": 3,
            "stopped_early_trials": 2,
            "failed_trials": 1,
            "seconds": 140.0,
            "objectives": [
                {
                    "metric": metric,
                    "direction": "OBJECTIVE_DIRECTION_"
                    + ("MINIMIZE" if metric == "eval_loss" else "MAXIMIZE"),
                }
            ],
        },
        message,
    )
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def run_with(response: dict, name="tune", call="tuning.TuneModel") -> pb.PipelineRun:
    """The run of run() and one more step, ``name``, that answered ``response``."""
    out = run()
    step = pb.StepRun(name=name, call=call, state=pb.STEP_STATE_SUCCEEDED)
    json_format.ParseDict(response, step.response)
    out.steps.append(step)
    return out


def tuning_events() -> list[event_service_pb2.Event]:
    """The events TuneModel streams: each trial's metrics per epoch, each completed trial's
    objective by trial number."""
    out = events()  # and a training step's, drawn as curves
    for number, (state, _, _, losses) in TRIALS.items():
        for epoch, loss in enumerate(losses, start=1):
            event = event_service_pb2.Event(step="tune")
            event.metrics.points.add(name=f"trial_{number}/eval_loss", value=loss, step=epoch)
            out.append(event)
        if state == "COMPLETED":
            event = event_service_pb2.Event(step="tune")
            event.metrics.points.add(name="eval_loss", value=losses[-1], step=number)
            out.append(event)
    return out


def rows(section: str) -> list[list[str]]:
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", section)]


def captions(section: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", section)


def test_a_search_draws_its_trials_their_epochs_and_the_parameter_importances():
    doc = report.document(run_with(tuning()), tuning_events())
    section = report.section_searches(doc)
    assert "<h2>Hyper-parameter search — tune</h2>" in section
    assert "6 trials: 3 completed, 2 stopped early, 1 failed" in section
    assert "eval_loss, smaller is better" in section
    assert re.findall(r"<th>(.*?)</th>", section) == [
        "trial",
        "state",
        "r",
        "learning_rate",
        "eval_loss",
        "epochs",
        "seconds",
    ]
    assert rows(section) == [
        ["1", "completed", "8", "0.0012", "0.55", "3", "37.5"],
        ["2", "stopped early", "4", "0.05", "1.3", "1", "12.5"],
        ["3 ★", "completed", "16", "0.0004", "0.42", "3", "37.5"],
        ["4", "failed", "32", "0.1", "", "0", "0"],
        ["5", "stopped early", "8", "0.02", "0.95", "2", "25"],
        ["6", "completed", "4", "0.0008", "0.48", "3", "37.5"],
    ]
    assert "◆" not in section  # a single objective: no Pareto front
    assert captions(section) == [
        "Objective over trials",
        "Objective per epoch",
        "Parameter importance",
    ]
    assert section.count("<svg") == 3
    # Legends and bars are text in the SVG: the hollow early stops, the best-so-far line, the
    # best trial's epochs, the importances by the parameters' short names, largest first.
    for drawn in (">stopped early<", ">best so far<", ">best (trial 3)<", "> 0.83<", "> 0.17<"):
        assert drawn in section
    importance = section[section.index("Parameter importance") :]
    assert importance.index(">r<") < importance.index(">learning_rate<")  # drawn bottom-up
    page = report.render(doc)
    assert section in page and page.count("<svg") == 3 + 3  # and the run's own three
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert report.render(doc) == page


def test_the_objective_and_its_direction_come_from_the_search():
    section = report.section_searches(report.document(run_with(tuning(metric="eval_accuracy")), []))
    assert "eval_accuracy, larger is better" in section
    assert "<th>eval_accuracy</th>" in section and "<th>eval_loss</th>" not in section
    assert rows(section)[2][:5] == ["3 ★", "completed", "16", "0.0004", "0.58"]


def test_a_multi_objective_search_without_importances_draws_its_pareto_front():
    doc = report.document(run_with(tuning(importances=False, pareto_front=("t3", "t6"))), [])
    section = report.section_searches(doc)
    assert [row[0] for row in rows(section)] == ["1", "2", "3 ★ ◆", "4", "5", "6 ◆"]
    assert captions(section) == [
        "Objective over trials",
        "Objective per epoch",
        "eval_loss against trainable parameters",
    ]
    assert section.count("<svg") == 3
    assert "Parameter importance" not in section


def test_the_curves_leave_a_search_s_series_to_its_section():
    doc = report.document(run_with(tuning()), tuning_events())
    assert "trial_1/eval_loss" in doc["series"]["tune"]  # the twin keeps every point
    curves = report.section_curves(doc)
    assert captions(curves) == ["Metrics per training step — train"]
    assert curves.count("<svg") == 1 and "trial_1/eval_loss" not in curves
    # Without a search result in its response, the step's series are plain curves again.
    doc = report.document(run_with({}), tuning_events())
    assert captions(report.section_curves(doc)) == [
        "Metrics per training step — train",
        "Metrics per training step — tune",
    ]


def test_a_run_without_a_search_result_has_no_search_section():
    assert report.section_searches(report.document(run(), events())) == ""
    empty = tuning()
    empty["trials"] = []
    assert report.section_searches(report.document(run_with(empty), [])) == ""
    no_best = tuning()
    del no_best["best_trial"]
    assert report.section_searches(report.document(run_with(no_best), [])) == ""


# --- a compression chain (CompressionService/CompressModel) --------------------------------------


def measurement(fmt, weights, p50, throughput, accuracy, f1) -> dict:
    return {
        "format": fmt,
        "weights_bytes": str(weights),
        "folder_bytes": str(weights + 1_200_000),
        "linear_weight_bytes": str(weights * 3 // 4),
        "parameters": "109482240",
        "latency_p50_ms": p50,
        "latency_p95_ms": p50 * 1.25,
        "throughput": throughput,
        "batch_size": 32,
        "batch_latency_ms": 32_000 / throughput,
        "accuracy": accuracy,
        "f1_macro": f1,
        "loss": 0.25,
        "num_examples": "872",
    }


def compression(always_print=True, budget_metric="accuracy") -> dict:
    """A CompressModelResponse as the orchestrator keeps it (proto JSON, zero fields printed or
    not): int8 kept, pruning over the budget and rolled back, the ONNX export skipped."""
    message = compression_service_pb2.CompressModelResponse()
    json_format.ParseDict(
        {
            "model": artifact("m_int8", ["m_base"]) | {"kind": "ARTIFACT_KIND_MODEL"},
            "original": measurement("hf", 438_000_000, 42.5, 88.0, 0.912, 0.9105),
            "steps": [
                {
                    "index": 1,
                    "compressor": "dynamic_int8",
                    "config": {"modules": ["Linear"]},
                    "outcome": "STEP_OUTCOME_KEPT",
                    "measurement": measurement("hf_int8", 181_000_000, 21.3, 170.0, 0.908, 0.9071),
                    "size_ratio": 0.4132,
                    "linear_size_ratio": 0.25,
                    "latency_ratio": 0.5012,
                    "batch_latency_ratio": 0.5176,
                    "accuracy_delta": -0.004,
                    "model": artifact("m_int8", ["m_base"]) | {"kind": "ARTIFACT_KIND_MODEL"},
                    "seconds": 35.2,
                },
                {
                    "index": 2,
                    "compressor": "structured_prune",
                    "config": {"heads": 0.3},
                    "outcome": "STEP_OUTCOME_ROLLED_BACK",
                    "measurement": measurement("hf_int8", 150_000_000, 17.0, 205.0, 0.871, 0.8702),
                    "size_ratio": 0.3425,
                    "linear_size_ratio": 0.2,
                    "latency_ratio": 0.4,
                    "batch_latency_ratio": 0.4293,
                    "accuracy_delta": -0.041,
                    "details": {"heads_removed": 43},
                    "seconds": 120.0,
                    "reason": "accuracy fell 4.10 points, over the budget of 1.00 <points>",
                },
                {
                    "index": 3,
                    "compressor": "onnx_export",
                    "outcome": "STEP_OUTCOME_SKIPPED",
                    "reason": "structured_prune was rolled back",
                },
            ],
            "budget_exceeded": True,
            "size_ratio": 0.4132,
            "latency_ratio": 0.5012,
            "batch_latency_ratio": 0.5176,
            "accuracy_delta": -0.004,
            "accuracy_budget": 0.01,
            "budget_metric": budget_metric,
            "seconds": 160.5,
        },
        message,
    )
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=always_print,
    )


def compression_section(response: dict) -> str:
    doc = report.document(run_with(response, "compress", "compression.CompressModel"), [])
    return report.section_compression(doc)


@pytest.mark.parametrize("always_print", [True, False])
def test_a_compression_chain_shows_every_step_its_verdict_and_the_trade_off(always_print):
    section = compression_section(compression(always_print))
    assert "<h2>Compression — compress</h2>" in section
    assert (
        "<p class=meta>3 steps: 1 kept, 1 rolled back, 1 skipped · budget 1.00 points of "
        "accuracy · budget exceeded · final size ×0.4132, latency ×0.5012, accuracy -0.40 "
        "points · 160.5 s</p>"
    ) in section
    assert re.findall(r"<th>(.*?)</th>", section) == [
        "step",
        "outcome",
        "format",
        "size",
        "size ratio",
        "Linear-weights ratio",
        "p50 ms",
        "p95 ms",
        "throughput/s",
        "batch latency ratio",
        "accuracy",
        "F1",
        "Δ accuracy (points)",
        "reason",
    ]
    reason = "accuracy fell 4.10 points, over the budget of 1.00 &lt;points&gt;"
    assert rows(section) == [
        ["original", "", "hf", "417.7 MB", "", "", "42.5", "53.12", "88"]
        + ["", "0.912", "0.9105", "", ""],
        ["1 dynamic_int8", "kept", "hf_int8", "172.6 MB", "0.4132", "0.25", "21.3", "26.62"]
        + ["170", "0.5176", "0.908", "0.9071", "-0.40", ""],
        ["2 structured_prune", "rolled back", "hf_int8", "143.1 MB", "0.3425", "0.2", "17"]
        + ["21.25", "205", "0.4293", "0.871", "0.8702", "-4.10", reason],
        ["3 onnx_export", "skipped", "", "", "", "", "", "", "", "", "", "", ""]
        + ["structured_prune was rolled back"],
    ]
    assert captions(section) == ["accuracy against latency and size, one point per step"]
    assert section.count("<svg") == 1
    # One labelled point per measured step on each panel (the labels are text in the SVG): the
    # rolled-back step is drawn, the skipped one is not; the legend names the outcomes.
    plot = section[section.index("<figure") :]
    assert plot.count("> 1 dynamic_int8<") == plot.count("> 2 structured_prune<") == 2
    assert plot.count("> original<") == 2 and "onnx_export" not in plot
    for drawn in (">p50 latency (ms)<", ">weights (MB)<", ">rolled back<", ">budget<"):
        assert drawn in plot
    doc = report.document(run_with(compression(always_print), "compress"), [])
    page = report.render(doc)
    assert section in page and page.count("<svg") == 2 + 1  # the run's own two, no curves
    assert report.render(doc) == page


def test_the_compression_section_follows_the_budget_metric():
    response = compression(budget_metric="f1_macro")
    response["budget_exceeded"] = False
    section = compression_section(response)
    assert "budget 1.00 points of f1_macro · final size" in section
    assert "budget exceeded" not in section
    assert "<th>Δ f1_macro (points)</th>" in section
    assert captions(section) == ["f1_macro against latency and size, one point per step"]


def test_a_run_without_a_compression_result_has_no_compression_section():
    doc = report.document(run(), events())
    assert report.section_compression(doc) == "" and "Compression" not in report.render(doc)
    empty = compression()
    empty["steps"] = []
    assert compression_section(empty) == ""
    assert compression_section(tuning()) == ""


# --- a continual update (MemoryService/ContinualUpdate) ------------------------------------------


def continual(always_print=True, promoted=False) -> dict:
    """A ContinualUpdateResponse as the orchestrator keeps it (proto JSON, zero fields printed or
    not): food known at update 0, hotel learned and promoted at update 1, and flipped (its labels
    reversed) learned at update 2 and, forgetting too much, not promoted; ``promoted``: the memory
    after update 1, hotel's update."""
    history = [
        {"update": 0, "model_id": "m0", "accuracy": {"food": 0.88}, "promoted": True},
        {
            "update": 1,
            "model_id": "m1",
            "task": "hotel",
            "accuracy": {"food": 0.87, "hotel": 0.9},
            "promoted": True,
            "forgetting": 0.01,
            "operation": "operations/u1",
        },
        {
            "update": 2,
            "model_id": "m2",
            "task": "flipped",
            "accuracy": {"food": 0.62, "hotel": 0.55, "flipped": 0.97},
            "promoted": False,
            "forgetting": 0.35,
            "operation": "operations/u2",
        },
    ]
    tasks = [
        {"task": "food", "before": 0.87, "after": 0.62, "learned": 0.88, "examples": "200"},
        {"task": "hotel", "before": 0.9, "after": 0.55, "learned": 0.9, "examples": "150"},
        {"task": "flipped", "before": 0.03, "after": 0.97, "learned": 0.97, "new": True}
        | {"examples": "1200"},
    ]
    response = {
        "model": artifact("m2", ["m1", "ds_flipped"]) | {"kind": "ARTIFACT_KIND_MODEL"},
        "promoted": False,
        "reason": "not promoted: task 'hotel' dropped from 0.9000 to 0.5500 (35.00 points), "
        "over max_forgetting (2.00 points) <flipped>",
        "previous_model_id": "m1",
        "task": "flipped",
        "new_rows": "1500",
        "selected_rows": "1200",
        "replayed_rows": "64",
        "added_samples": "0",
        "tasks": tasks,
        "forgetting": 0.35,
        "max_forgetting": 0.02,
        "backward_transfer": -0.305,
        "new_task_accuracy": 0.97,
        "new_task_accuracy_before": 0.03,
        "history": history,
        "metrics": {"loss": 0.41, "penalty": 0.02},
        "seconds": 48.5,
    }
    if promoted:
        response |= {
            "model": artifact("m1", ["m0", "ds_hotel"]) | {"kind": "ARTIFACT_KIND_MODEL"},
            "promoted": True,
            "reason": "promoted: the worst old task lost 1.00 points (max 2.00); 'hotel' went "
            "from 0.4000 to 0.9000",
            "previous_model_id": "m0",
            "task": "hotel",
            "new_rows": "800",
            "selected_rows": "500",
            "replayed_rows": "32",
            "added_samples": "500",
            "tasks": [
                {"task": "food", "before": 0.88, "after": 0.87, "learned": 0.88, "examples": "200"},
                {"task": "hotel", "before": 0.4, "after": 0.9, "learned": 0.9, "new": True}
                | {"examples": "150"},
            ],
            "forgetting": 0.01,
            "backward_transfer": -0.01,
            "new_task_accuracy": 0.9,
            "new_task_accuracy_before": 0.4,
            "history": history[:2],
        }
    message = memory_service_pb2.ContinualUpdateResponse()
    json_format.ParseDict(response, message)
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=always_print,
    )


def continual_section(response: dict) -> str:
    doc = report.document(run_with(response, "continual", "memory.ContinualUpdate"), [])
    return report.section_continual(doc)


@pytest.mark.parametrize("always_print", [True, False])
def test_a_continual_update_shows_its_verdict_every_task_and_the_accuracy_over_updates(
    always_print,
):
    response = continual(always_print)
    if not always_print:  # the proto's defaults are left out; int64 fields are strings
        assert "promoted" not in response and "promoted" not in response["history"][2]
        assert "added_samples" not in response and response["new_rows"] == "1500"
    section = continual_section(response)
    assert "<h2>Continual learning — continual</h2>" in section
    assert (
        '<p class=meta><span class="state failed">not promoted</span> not promoted: task '
        "&#x27;hotel&#x27; dropped from 0.9000 to 0.5500 (35.00 points), over max_forgetting "
        "(2.00 points) &lt;flipped&gt; · task flipped learned · forgetting 35.00 points (max "
        "2.00) · backward transfer -30.50 points · flipped accuracy 0.03 → 0.97 · rows: 1,500 "
        "new / 1,200 selected / 64 replayed / 0 added to the memory · 48.5 s</p>"
    ) in section
    assert "<flipped>" not in section
    assert re.findall(r"<th>(.*?)</th>", section) == [
        "task",
        "before",
        "after",
        "change (points)",
        "accuracy when learned",
        "examples",
    ]
    assert rows(section) == [
        ["food", "0.87", "0.62", "-25.00", "0.88", "200"],
        ["hotel", "0.9", "0.55", "-35.00", "0.9", "150"],
        ["flipped (new)", "0.03", "0.97", "+94.00", "0.97", "1,200"],
    ]
    assert captions(section) == ["per-task accuracy over successive updates"]
    assert section.count("<svg") == 1
    # The legend names every task and the update not promoted (text in the SVG); flipped, first
    # scored by it, is named beside its x; food and hotel reach theirs by a dotted segment.
    plot = section[section.index("<figure") :]
    for drawn in (">food<", ">hotel<", ">not promoted<", "> flipped<", ">update<", ">accuracy<"):
        assert drawn in plot
    assert ">flipped<" not in plot  # no promoted point: no line, no legend entry
    legend = [plot.index(f">{name}<") for name in ("food", "hotel", "not promoted")]
    assert legend == sorted(legend)
    assert plot.count("stroke-dasharray") == 2
    doc = report.document(run_with(response, "continual", "memory.ContinualUpdate"), [])
    page = report.render(doc)
    assert section in page and page.count("<svg") == 2 + 1  # the run's own two, no curves
    assert "m2" in [a["id"] for a in doc["artifacts"]]
    assert report.render(doc) == page


@pytest.mark.parametrize("always_print", [True, False])
def test_a_promoted_continual_update_has_no_rejected_point(always_print):
    section = continual_section(continual(always_print, promoted=True))
    assert '<span class="state succeeded">promoted</span> promoted: the worst old task' in section
    assert (
        "task hotel learned · forgetting 1.00 points (max 2.00) · backward transfer -1.00 points "
        "· hotel accuracy 0.4 → 0.9 · rows: 800 new / 500 selected / 32 replayed / 500 added"
    ) in section
    assert rows(section) == [
        ["food", "0.88", "0.87", "-1.00", "0.88", "200"],
        ["hotel (new)", "0.4", "0.9", "+50.00", "0.9", "150"],
    ]
    plot = section[section.index("<figure") :]
    assert ">food<" in plot and ">hotel<" in plot
    assert "not promoted" not in plot and "stroke-dasharray" not in plot


def test_a_run_without_a_continual_update_has_no_continual_section():
    doc = report.document(run(), events())
    assert report.section_continual(doc) == "" and "Continual learning" not in report.render(doc)
    assert continual_section(compression()) == ""
    assert continual_section(tuning()) == ""
    empty = continual()
    empty["history"] = []
    assert continual_section(empty) == ""


# --- fairness --------------------------------------------------------------------------------


def fairness_metrics(rates: dict[str, float], dp: float) -> dict:
    return {
        "count": "100",
        "accuracy": 0.85,
        "selection_rate": 0.2,
        "demographic_parity_difference": dp,
        "demographic_parity_ratio": min(rates.values()) / max(rates.values()),
        "equalized_odds_difference": 0.09,
        "groups": [
            {"group": g, "count": "50", "accuracy": 0.9, "selection_rate": r}
            | {"false_positive_rate": 0.05, "false_negative_rate": 0.4}
            for g, r in rates.items()
        ],
    }


def fairness_section(response: dict, message, call: str, always_print: bool) -> str:
    parsed = message()
    json_format.ParseDict(response, parsed)
    response = json_format.MessageToDict(
        parsed, preserving_proto_field_name=True, always_print_fields_with_no_presence=always_print
    )
    return report.section_fairness(report.document(run_with(response, "fair", call), []))


@pytest.mark.parametrize("always_print", [True, False])
def test_a_fairness_audit_shows_its_failed_check_every_group_and_the_bars(always_print):
    response = {
        "metrics": fairness_metrics({"Female": 0.1, "Male": 0.3}, 0.2),
        "checks": [
            {"metric": "demographic_parity_difference", "op": "<=", "threshold": 0.1}
            | {"value": 0.2, "passed": False},
            {"metric": "min_accuracy", "op": ">=", "threshold": 0.8, "value": 0.85}
            | {"passed": True},
        ],
        "passed": 0,
        "subject": "mdl_1",
        "sensitive_columns": ["sex"],
    }
    section = fairness_section(
        response, safety_service_pb2.AuditFairnessResponse, "safety.AuditFairness", always_print
    )
    assert "<h2>Fairness audit — fair</h2>" in section
    assert (
        '<span class="state failed">failed</span> demographic_parity_difference 0.2 (must be <= '
        "0.1) · mdl_1 on sex"
    ) in section
    assert rows(section) == [
        ["overall", "0.85", "0.2", "0.2", "0.3333", "0.09"],
        ["Female", "50", "0.9", "0.1", "0.05", "0.4"],
        ["Male", "50", "0.9", "0.3", "0.05", "0.4"],
    ]
    assert captions(section) == ["per-group rates"] and section.count("<svg") == 1
    for drawn in (">selection rate<", ">false negative rate<", ">Female<", ">Male<"):
        assert drawn in section


def test_a_mitigation_compares_before_and_after_per_group():
    response = {
        "before": fairness_metrics({"Female": 0.1, "Male": 0.3}, 0.2),
        "after": fairness_metrics({"Female": 0.18, "Male": 0.22}, 0.04),
        "accuracy_delta": -0.013,
        "demographic_parity_difference_delta": -0.16,
        "passed": 1,
    }
    section = fairness_section(
        response, safety_service_pb2.MitigateFairnessResponse, "safety.MitigateFairness", True
    )
    assert "<h2>Fairness mitigation — fair</h2>" in section
    assert "accuracy -1.30 points, demographic parity difference -16.00 points" in section
    assert [r[:2] for r in rows(section)] == [
        ["before", "0.85"],
        ["after", "0.85"],
        ["before", "Female"],
        ["before", "Male"],
        ["after", "Female"],
        ["after", "Male"],
    ]
    assert ">selection rate (before)<" in section and ">selection rate (after)<" in section


def test_a_run_without_a_fairness_result_has_no_fairness_section():
    doc = report.document(run(), events())
    assert report.section_fairness(doc) == "" and "Fairness" not in report.render(doc)


# --- the whole report, pinned ------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
# The library versions the golden report records (a real one: those installed where it is built).
GOLDEN_VERSIONS = {"python": "3.12.0", "forgeline": "0.1.0", "torch": "2.5.1"}
PROFILE = {
    "dataset_id": "ds_clean",
    "num_rows": "55",
    "label_counts": {"neg": "30", "pos": "25"},
    "text_length": {"min": 4, "max": 120, "mean": 38.5, "std": 12.25, "p50": 35, "p95": 90},
    "duplicate_rate": 0.02,
    "null_counts": {"text": "0", "label": "1"},
}


def full_run() -> tuple[pb.PipelineRun, list[event_service_pb2.Event], dict]:
    """A run with a step of every result shape the report draws, timed, with its events and the
    audit log's head: what the golden report files were written from."""
    out = run()
    out.create_time.FromJsonString("2026-01-02T03:04:05.250Z")
    out.end_time.FromJsonString("2026-01-02T03:09:07Z")
    out.overrides.append("train.epochs=2")
    out.steps[0].start_time.FromJsonString("2026-01-02T03:04:06Z")
    out.steps[0].end_time.FromJsonString("2026-01-02T03:04:08.125Z")
    out.steps[0].metrics["rows_out"] = 55
    mitigation = {
        "before": fairness_metrics({"Female": 0.1, "Male": 0.3}, 0.2),
        "after": fairness_metrics({"Female": 0.18, "Male": 0.22}, 0.04),
        "accuracy_delta": -0.013,
        "passed": 1,
    }
    for name, call, response in [
        ("tune", "tuning.TuneModel", tuning(pareto_front=("t3", "t6"))),
        ("compress", "compression.CompressModel", compression(always_print=False)),
        ("continual", "memory.ContinualUpdate", continual()),
        ("fair", "safety.MitigateFairness", mitigation),
        ("profile", "data.ProfileDataset", {"profile": PROFILE}),
    ]:
        step = out.steps.add(name=name, call=call, state=pb.STEP_STATE_SUCCEEDED, cached=True)
        json_format.ParseDict(response, step.response)
    head = {"expect_head": "17:" + "cd" * 32, "pending": 2}
    return out, tuning_events(), head


def without_plots(page: str) -> str:
    """The page with each inline SVG replaced by its size: matplotlib's output changes with its
    version, the page around it must not."""
    return re.sub(r"<svg.*?</svg>", lambda m: f"<svg {len(m[0]) > 1000}>", page, flags=re.S)


def test_the_report_of_a_fixed_run_is_the_golden_one(tmp_path):
    doc = report.document(*full_run(), versions=GOLDEN_VERSIONS)
    report.write(doc, tmp_path)
    written = (tmp_path / report.REPORT_JSON).read_text()
    golden = (GOLDEN / "report.json").read_text()
    assert written == json.dumps(json.loads(written), indent=1) + "\n"
    # The report lays out its own keys in a fixed order; the keys inside a response come from a
    # protobuf Struct, whose order changes from one process to the next, and with it which of
    # two fields holding the same artifact is named first: compared sorted, that field aside.
    ours, theirs = json.loads(written), json.loads(golden)
    for part in (ours, theirs):
        for artifact_ in part["artifacts"]:
            artifact_["field"] = artifact_["field"].rsplit(".", 1)[-1]
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    for a, b in [(ours, theirs)] + list(
        zip(ours["steps"] + ours["artifacts"], theirs["steps"] + theirs["artifacts"], strict=True)
    ):
        assert list(a) == list(b)
    page = (tmp_path / report.REPORT_HTML).read_text(encoding="utf-8")
    assert page.count("<svg") == 10
    assert without_plots(page) == (GOLDEN / "report_page.html").read_text(encoding="utf-8")


def test_building_a_report_leaves_matplotlib_s_settings_as_they_were(tmp_path):
    import matplotlib

    # Settings unlike the report's own: the page must still have its style, and these must stay.
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": None}):
        before = matplotlib.rcParams.copy()
        doc = report.document(*full_run())
        report.write(doc, tmp_path)
        assert matplotlib.rcParams.copy() == before  # copies: comparing reads no lazy default
    page = (tmp_path / report.REPORT_HTML).read_text(encoding="utf-8")
    assert page.count("<svg") == 10 and ">Female<" in page  # text stays text in the SVG
    assert report.render(doc) == page  # the same ids: the report's hash salt was used


def test_reports_drawn_at_once_each_keep_the_report_s_style():
    from concurrent.futures import ThreadPoolExecutor

    import matplotlib

    doc = report.document(run(), events())
    with matplotlib.rc_context({"svg.fonttype": "path"}):
        alone = report.render(doc)
        with ThreadPoolExecutor(4) as pool:
            pages = list(pool.map(report.render, [doc] * 4))
        assert matplotlib.rcParams["svg.fonttype"] == "path"
    assert ">100<" in alone and pages == [alone] * 4


def test_the_mistakes_a_classifier_kept_are_listed_most_confident_first():
    wrong = run()
    evaluate = wrong.steps[1]
    evaluate.response["evaluation"]["misclassified"] = [
        {
            "row": 7,
            "text_excerpt": "cold <b>soup</b>",
            "label": "neg",
            "predicted": "pos",
            "confidence": 0.93,
        },
        {
            "row": 2,
            "text_excerpt": "fine food",
            "label": "pos",
            "predicted": "neg",
            "confidence": 0.61,
        },
    ]
    page = report.render(report.document(wrong, events()))
    mistakes = page[page.index('<div class="mistakes">') :]
    # 10 rows at accuracy 0.7: 3 wrong, 2 of them kept.
    assert "Mistakes — evaluate (2 of 3, the most confident first)" in mistakes
    assert mistakes.index("cold &lt;b&gt;soup&lt;/b&gt;") < mistakes.index("fine food")
    assert "<b>soup" not in mistakes and ">0.93<" in mistakes
    assert '<div class="mistakes">' not in report.render(report.document(run(), events()))
