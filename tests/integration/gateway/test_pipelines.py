"""PipelineService on a real data service: a DAG of data steps runs, streams tagged events,
caches, stops at a failed gate, refuses a bad pipeline whole, retries from the failed step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.fixtures import data_gateway

ROWS = ["great food", "awful taste", "fresh and tasty", "cold soup", "lovely soup", "slow delivery"]


@pytest.fixture(scope="module")
def reviews(data_root) -> str:
    path = data_root / "gateway-reviews.csv"
    lines = [
        f"{text} {i},{'pos' if j % 2 == 0 else 'neg'}"
        for i in range(10)
        for j, text in enumerate(ROWS)
    ]
    path.write_text("text,label\n" + "\n".join(lines + lines[:12]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def gateway(data_service, tmp_path_factory, data_root) -> Iterator[Client]:
    for thread in data_gateway(tmp_path_factory, data_service, data_root):
        with Client(thread.address) as client:
            yield client


def pipeline(source: str, gate: str = "dataset.num_rows >= 10") -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: reviews}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{source}"}}
  - name: clean
    call: data.CleanDataset
    with:
      dataset_id: ${{{{ steps.ingest.dataset.artifact.id }}}}
      cleaners: [{{name: dedup_exact}}]
    gates: ["{gate}"]
  - name: profile
    call: data.ProfileDataset
    with: {{dataset_id: "${{{{ steps.ingest.dataset.artifact.id }}}}"}}
  - name: split
    call: data.SplitDataset
    with:
      dataset_id: ${{{{ steps.clean.dataset.artifact.id }}}}
      train_fraction: 0.8
      validation_fraction: 0.2
      seed: 1
"""


def submit(gateway: Client, text: str, **kwargs) -> operations_pb2.Operation:
    return gateway.pipelines.SubmitPipeline(pb.SubmitPipelineRequest(pipeline_yaml=text, **kwargs))


def run_of(gateway: Client, name: str) -> pb.PipelineRun:
    return gateway.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=name)).run


def test_a_pipeline_runs_as_a_dag_and_a_second_run_is_served_from_the_cache(gateway, reviews):
    op = submit(gateway, pipeline(reviews))
    done = gateway.wait(op, pb.SubmitPipelineResponse, timeout=120).run
    steps = {s.name: s for s in done.steps}
    assert done.state == common_pb2.OPERATION_STATE_SUCCEEDED
    assert all(s.state == pb.STEP_STATE_SUCCEEDED and not s.cached for s in steps.values())
    # Responses are in the proto JSON mapping: int64 fields are strings.
    assert steps["ingest"].response["dataset"]["num_rows"] == "72"
    assert steps["clean"].response["dataset"]["num_rows"] == "60"  # 12 repeated lines dropped
    split_rows = [int(steps["split"].response[p]["num_rows"]) for p in ("train", "validation")]
    assert sum(split_rows) == 60
    assert steps["clean"].gates[0].passed and steps["clean"].gates[0].value == 60
    assert list(steps["split"].depends_on) == ["clean"]
    assert steps["clean"].operation.startswith("operations/")

    events = list(gateway.stream_events(op.name, follow=False))
    tagged = {e.step for e in events if e.step}
    assert tagged == {"ingest", "clean", "profile", "split"}
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))

    # The report: a JSON twin with every step and artifact, and a page with the funnel drawn.
    assert done.report.kind == common_pb2.ARTIFACT_KIND_REPORT
    assert run_of(gateway, op.name).report == done.report
    folder = Path(unquote(urlparse(done.report.uri).path))
    doc = json.loads((folder / "report.json").read_text())
    assert doc["run"] == op.name and doc["state"] == "SUCCEEDED"
    assert [s["name"] for s in doc["steps"]] == ["ingest", "clean", "profile", "split"]
    produced = {a["step"]: a for a in doc["artifacts"]}
    assert produced["clean"]["parent_ids"] == [produced["ingest"]["id"]]
    assert set(done.report.lineage.parent_ids) == {a["id"] for a in doc["artifacts"]}
    page = (folder / "report.html").read_text()
    assert "Cleaning funnel — clean" in page and page.count("<svg") == 1
    assert "dataset.num_rows &gt;= 10" in page

    again = gateway.wait(submit(gateway, pipeline(reviews)), pb.SubmitPipelineResponse).run
    assert all(s.cached for s in again.steps)
    assert {s.name: s.response for s in again.steps} == {s.name: s.response for s in done.steps}

    fresh = gateway.wait(
        submit(gateway, pipeline(reviews), no_cache=True), pb.SubmitPipelineResponse
    ).run
    assert not any(s.cached for s in fresh.steps)


def test_a_failed_gate_stops_everything_downstream_and_says_by_how_much(gateway, reviews):
    # No cache: every step runs here (and again in the retry), whatever ran before.
    op = submit(gateway, pipeline(reviews, gate="dataset.num_rows >= 100"), no_cache=True)
    with pytest.raises(FailedPrecondition, match="gate failed") as caught:
        gateway.wait(op, pb.SubmitPipelineResponse, timeout=120)
    assert "dataset.num_rows = 60, 40 below the gate >= 100" in str(caught.value)
    steps = {s.name: s for s in run_of(gateway, op.name).steps}
    assert steps["clean"].state == pb.STEP_STATE_FAILED
    assert steps["split"].state == pb.STEP_STATE_SKIPPED
    assert steps["profile"].state == pb.STEP_STATE_SUCCEEDED  # an independent branch finishes
    assert not steps["clean"].gates[0].passed
    # A failed run has its report too, with the verdict.
    failed = run_of(gateway, op.name)
    page = Path(unquote(urlparse(failed.report.uri).path)) / "report.html"
    assert "40 below the gate &gt;= 100" in page.read_text()

    # Retried with the same pipeline the gate fails again; what succeeded is kept, not re-run.
    retry = gateway.pipelines.RetryPipelineRun(pb.RetryPipelineRunRequest(name=op.name))
    with pytest.raises(FailedPrecondition, match="gate failed"):
        gateway.wait(retry, pb.RetryPipelineRunResponse, timeout=120)
    retried = {s.name: s for s in run_of(gateway, retry.name).steps}
    assert retried["ingest"].message.startswith("kept from")
    assert retried["ingest"].operation == steps["ingest"].operation
    assert run_of(gateway, retry.name).attempt == 2
    # Its report draws each step once: a kept step's points from the first run, the step run
    # again from this one, never both.
    retried_run = run_of(gateway, retry.name)
    doc = json.loads(
        (Path(unquote(urlparse(retried_run.report.uri).path)) / "report.json").read_text()
    )
    assert doc["series"]["clean"]["dedup_exact.rows_out"] == [[1, 60]]


def test_a_bad_pipeline_is_refused_whole_before_anything_runs(gateway, reviews):
    before = len(gateway.pipelines.ListPipelineRuns(pb.ListPipelineRunsRequest()).runs)
    text = (
        pipeline(reviews)
        .replace("dedup_exact", "dedupe")
        .replace("train_fraction: 0.8", "train_fraction: lots")
    )
    text = text.replace('["dataset.num_rows >= 10"]', '["bleu >= 1"]')
    with pytest.raises(InvalidArgument) as caught:
        submit(gateway, text)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "steps.clean.with.cleaners[0].name",
        "steps.clean.gates[0]",
        "steps.split.with.train_fraction",
    }
    after = len(gateway.pipelines.ListPipelineRuns(pb.ListPipelineRunsRequest()).runs)
    assert after == before

    plan = gateway.pipelines.ValidatePipeline(
        pb.ValidatePipelineRequest(pipeline_yaml=pipeline(reviews))
    )
    assert [s.name for s in plan.steps][0] == "ingest"
    assert plan.steps[-1].method == "forgeline.v1.DataService/SplitDataset"


def test_every_kind_of_problem_comes_back_in_one_answer(gateway, reviews):
    text = f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: broken}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{reviews}"}}
  - name: a
    call: data.CleanDataset
    with:
      dataset_id: ${{{{ steps.b.dataset.artifact.id }}}}
      cleaners: [{{name: dedupe}}]
  - name: b
    call: data.CleanDataset
    with:
      dataset_id: ${{{{ steps.a.dataset.artifact.id }}}}
      cleaners: [{{name: dedup_near, config: {{threshold: 2}}}}]
    gates: ["bleu >= 1"]
  - name: c
    call: dta.ProfileDataset
    with: {{dataset_id: "${{{{ steps.nowhere.dataset.artifact.id }}}}"}}
"""
    with pytest.raises(InvalidArgument) as caught:
        gateway.pipelines.ValidatePipeline(pb.ValidatePipelineRequest(pipeline_yaml=text))
    problems = {v.field: v.description for v in caught.value.violations}
    assert "a -> b -> a" in problems["steps"] or "b -> a -> b" in problems["steps"]
    assert "no step 'nowhere' produces this" in problems["steps.c.with.dataset_id"]
    assert "no service 'dta'" in problems["steps.c.call"] and "data" in problems["steps.c.call"]
    assert "dedup_exact" in problems["steps.a.with.cleaners[0].name"]  # the known ones listed
    assert "steps.b.with.cleaners[0].config.threshold" in problems
    assert "bleu" in problems["steps.b.gates[0]"]
