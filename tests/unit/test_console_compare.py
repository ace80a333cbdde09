"""The console's run summaries and comparisons, from PipelineRun messages and report.json
documents built by hand: headline metrics, gates, config differences with overrides, metric
deltas against the first run, and which series become curves."""

from __future__ import annotations

from forgeline.services.http.console.compare import compare
from forgeline.services.http.console.routes import detail, headline, summary
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as ppb

YAML = """
metadata: {name: p}
steps:
  - name: train
    call: training.TrainModel
    with: {hyper_parameters: {learning_rate: %s, max_steps: 10}}
"""


def report(rate: float, accuracy: float | None, overrides: list[str] = ()) -> dict:
    metrics = {"loss": 0.5, "epoch": 2.0} | ({"accuracy": accuracy} if accuracy is not None else {})
    return {
        "pipeline": "p",
        "state": "SUCCEEDED",
        "pipeline_yaml": YAML % rate,
        "overrides": list(overrides),
        "steps": [{"name": "train", "seconds": 3.0, "metrics": metrics}],
        "series": {
            "train": {"loss": [[1, 0.9], [2, 0.7]], "epoch": [[1, 1.0]], "tokens": [[1, 5]]}
        },
    }


def test_compare_marks_what_differs_and_deltas_against_the_first_run():
    found = compare(
        ["a", "b", "c"],
        [report(0.001, 0.8), report(0.01, 0.9, ["steps.train.with.seed=3"]), report(0.001, None)],
    )
    differing = {row["key"]: row["values"] for row in found["config"] if row["differs"]}
    assert differing == {
        "steps[train].with.hyper_parameters.learning_rate": [0.001, 0.01, 0.001],
        "overrides.steps.train.with.seed": [None, "3", None],
    }
    same = {row["key"] for row in found["config"] if not row["differs"]}
    assert "steps[train].with.hyper_parameters.max_steps" in same
    rows = {(r["step"], r["metric"]): r for r in found["metrics"]}
    assert ("train", "epoch") not in rows  # an axis, not a metric
    accuracy = rows[("train", "accuracy")]
    assert accuracy["values"] == [0.8, 0.9, None]
    assert accuracy["deltas"][0] == 0 and abs(accuracy["deltas"][1] - 0.1) < 1e-9
    assert accuracy["deltas"][2] is None
    assert found["series"]["a"] == {"train": {"loss": [[1, 0.9], [2, 0.7]]}}
    assert found["runs"][1]["overrides"] == ["steps.train.with.seed=3"]


def run_with_steps() -> ppb.PipelineRun:
    run = ppb.PipelineRun(
        name="operations/abc123", pipeline="p", state=common_pb2.OPERATION_STATE_SUCCEEDED
    )
    run.create_time.FromSeconds(100)
    run.end_time.FromSeconds(172)
    train = run.steps.add(name="train", state=ppb.STEP_STATE_SUCCEEDED)
    train.metrics.update({"loss": 0.4, "accuracy": 0.7, "epoch": 1})
    evaluate = run.steps.add(name="evaluate", state=ppb.STEP_STATE_SUCCEEDED, depends_on=["train"])
    evaluate.metrics.update({"accuracy": 0.85, "f1_macro": 0.8})
    evaluate.gates.add(expression="accuracy >= 0.9", passed=False, message="0.85 < 0.9")
    evaluate.response.update(
        {
            "model": {
                "id": "m1",
                "uri": "file:///x",
                "sha256": "s",
                "lineage": {"parent_ids": ["d1"]},
            }
        }
    )
    return run


def test_a_run_summary_names_its_headline_gates_and_time():
    run = run_with_steps()
    assert headline(run) == {"accuracy": 0.85, "f1_macro": 0.8}  # the later step wins
    row = summary(run)
    assert row["id"] == "abc123" and row["seconds"] == 72.0 and row["done"]
    assert row["steps"] == row["steps_finished"] == 2
    assert row["gates"] == [
        {
            "step": "evaluate",
            "expression": "accuracy >= 0.9",
            "passed": False,
            "message": "0.85 < 0.9",
        }
    ]
    (evaluate,) = [s for s in detail(run)["steps_detail"] if s["name"] == "evaluate"]
    assert evaluate["artifacts"] == [
        {
            "field": "model",
            "id": "m1",
            "kind": "",
            "uri": "file:///x",
            "parents": ["d1"],
            "producer": "",
        }
    ]
