"""The run report: its JSON twin from a run and its events, and the page drawn from the JSON."""

from __future__ import annotations

import json
import re

from google.protobuf import json_format

from forgeline.gateway import report
from forgeline.v1 import common_pb2, event_service_pb2
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
