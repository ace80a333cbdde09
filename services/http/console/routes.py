"""/console/api: runs (list, one, its events live, cancel, retry, its report), runs compared, and
deployments, as JSON the console's script reads. See the package's docstring."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from google.protobuf.json_format import MessageToDict

from forgeline.artifacts import ArtifactStore
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.services.http.app import caller_token
from forgeline.services.http.console.compare import compare, pipeline_spec
from forgeline.services.http.upstream import Gateway, Upstream
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as ppb

STATIC = Path(__file__).parent / "static"
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_RUNS = 500
MAX_COMPARED = 6
# Metrics a runs list shows first (the first few a run has, later steps' values winning).
HEADLINE = ("accuracy", "f1", "rouge", "bleu", "size_ratio", "perplexity", "forgetting")
HEADLINE_COUNT = 4
DONE = {
    common_pb2.OPERATION_STATE_SUCCEEDED,
    common_pb2.OPERATION_STATE_FAILED,
    common_pb2.OPERATION_STATE_CANCELLED,
}

router = APIRouter(prefix="/console/api", tags=["console"])
# The runs list's filters, as /runs and /runs/watch take them.
StateQuery = Annotated[str, Query(description="Only runs in this state (RUNNING, SUCCEEDED, ...).")]
NameQuery = Annotated[str, Query(description="Only runs whose pipeline or id contains this text.")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_RUNS)]


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


def operation_name(run_id: str, field: str = "run") -> str:
    """``operations/<run_id>``, refusing anything but an operation id."""
    if not RUN_ID.match(run_id):
        raise InvalidArgument.for_field(field, f"{run_id!r} is not a run id (letters, digits, -_)")
    return f"operations/{run_id}"


def _time(message: Any, field: str) -> str:
    return getattr(message, field).ToJsonString() if message.HasField(field) else ""


def _span(message: Any, start: str) -> float | None:
    """Seconds from ``start`` to end_time; None while either is unset."""
    if not (message.HasField(start) and message.HasField("end_time")):
        return None
    began = getattr(message, start).ToNanoseconds()
    return round((message.end_time.ToNanoseconds() - began) / 1e9, 3)


def headline(run: ppb.PipelineRun) -> dict[str, float]:
    """A few metrics that say how the run went: the first HEADLINE_COUNT names matching
    HEADLINE (in its order), each taken from the last step that has it."""
    latest: dict[str, float] = {}
    for step in run.steps:
        latest.update(step.metrics)
    chosen: dict[str, float] = {}
    for word in HEADLINE:
        for name in sorted(latest):
            if word in name and name not in chosen and len(chosen) < HEADLINE_COUNT:
                chosen[name] = latest[name]
    return chosen


def summary(run: ppb.PipelineRun) -> dict[str, Any]:
    """One row of the runs list."""
    states = [ppb.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in run.steps]
    return {
        "id": run.name.removeprefix("operations/"),
        "name": run.name,
        "pipeline": run.pipeline,
        "state": common_pb2.OperationState.Name(run.state).removeprefix("OPERATION_STATE_"),
        "done": run.state in DONE,
        "attempt": run.attempt,
        "message": run.message,
        "create_time": _time(run, "create_time"),
        "end_time": _time(run, "end_time"),
        "seconds": _span(run, "create_time"),
        "steps": len(run.steps),
        "steps_finished": sum(s in ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED") for s in states),
        "headline": headline(run),
        "gates": [
            {
                "step": step.name,
                "expression": g.expression,
                "passed": g.passed,
                "message": g.message,
            }
            for step in run.steps
            for g in step.gates
        ],
        "report": bool(run.report.uri),
    }


def detail(run: ppb.PipelineRun) -> dict[str, Any]:
    """The run page's data: the summary, each step as the proto JSON mapping gives it (its
    request, response, metrics, gates, times), and the pipeline's YAML. A step the gateway has
    not sent yet (or a run recorded before gateways kept requests) shows its request as the
    pipeline wrote it; ``request_sent`` says which."""
    requests = step_requests(run.pipeline_yaml)
    steps = []
    for step in run.steps:
        as_dict = MessageToDict(step, preserving_proto_field_name=True)
        as_dict["request_sent"] = bool(as_dict.get("request"))
        if not as_dict["request_sent"]:
            as_dict["request"] = requests.get(step.name)
        as_dict["state"] = ppb.StepState.Name(step.state).removeprefix("STEP_STATE_")
        as_dict["seconds"] = _span(step, "start_time")
        as_dict["artifacts"] = list(_artifacts(as_dict.get("response", {})))
        steps.append(as_dict)
    return {
        **summary(run),
        "steps_detail": steps,
        "pipeline_yaml": run.pipeline_yaml,
        "overrides": list(run.overrides),
    }


def step_requests(pipeline_yaml: str) -> dict[str, Any]:
    """Each step's request as the pipeline wrote it (its ``with``: references to earlier steps
    unresolved, --set overrides not applied)."""
    steps = pipeline_spec(pipeline_yaml).get("steps")
    if not isinstance(steps, list):
        return {}
    return {
        str(step["name"]): step.get("with") or {}
        for step in steps
        if isinstance(step, dict) and "name" in step
    }


def _artifacts(value: Any, path: str = "") -> Any:
    """Every Artifact in a step's response (id, uri and digest), with its lineage."""
    if isinstance(value, dict):
        if {"id", "uri", "sha256"} <= value.keys():
            lineage = value.get("lineage", {})
            yield {
                "field": path,
                "id": value["id"],
                "kind": str(value.get("kind", "")).removeprefix("ARTIFACT_KIND_").lower(),
                "uri": value["uri"],
                "parents": lineage.get("parent_ids", []),
                "producer": lineage.get("producer", ""),
            }
            return
        for key, item in value.items():
            yield from _artifacts(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _artifacts(item, f"{path}[{i}]")


# --- runs ---------------------------------------------------------------------------------------


@router.get("/runs")
async def list_runs(
    request: Request,
    state: StateQuery = "",
    q: NameQuery = "",
    limit: LimitQuery = 100,
) -> JSONResponse:
    """The newest runs, newest first, filtered by state and name (among the newest MAX_RUNS:
    the gateway filters by neither, so only a filtered list reads that many)."""
    wanted = MAX_RUNS if state or q else limit
    runs = await gateway_of(request).runs(caller_token(request), wanted)
    return JSONResponse({"runs": listed(runs, state, q, limit)})


@router.get("/runs/watch")
async def watch_runs(
    request: Request,
    state: StateQuery = "",
    q: NameQuery = "",
    limit: LimitQuery = 100,
) -> StreamingResponse:
    """The runs list live, as server-sent events: ``runs`` ({"runs": [...]}, as GET /runs
    answers) at once and again whenever the list changes (a run submitted, a step's state or
    metrics, a run's end), from the gateway's WatchPipelineRuns stream."""
    stream = gateway_of(request).watch_runs(
        caller_token(request), MAX_RUNS if state or q else limit
    )
    try:  # the first page before the answer: a gateway that refuses is an HTTP error, not a frame
        first = await stream.next()
    except BaseException:
        stream.close()
        raise

    async def frames() -> AsyncIterator[str]:
        page, sent = first, None
        try:
            while page is not None:
                rows = listed(page.runs, state, q, limit)
                if rows != sent:
                    yield _frame("runs", {"runs": rows})
                    sent = rows
                page = await stream.next()
        finally:
            stream.close()
        yield _frame("end", {})

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def listed(runs: Iterable[ppb.PipelineRun], state: str, q: str, limit: int) -> list[dict]:
    """The runs list's rows: each run's summary, those in ``state`` whose pipeline or id holds
    ``q`` (either empty: no filter), at most ``limit``."""
    rows = [summary(run) for run in runs]
    if state:
        rows = [row for row in rows if row["state"] == state.upper()]
    if q:
        rows = [row for row in rows if q.lower() in f"{row['pipeline']} {row['id']}".lower()]
    return rows[:limit]


@router.get("/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> JSONResponse:
    run = await gateway_of(request).run(operation_name(run_id), caller_token(request))
    return JSONResponse(detail(run))


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> JSONResponse:
    run = await gateway_of(request).cancel(operation_name(run_id), caller_token(request))
    return JSONResponse(detail(run))


@router.post("/runs/{run_id}/retry")
async def retry_run(run_id: str, request: Request) -> JSONResponse:
    """Retries a failed or cancelled run; the answer names the new attempt's run."""
    name = await gateway_of(request).retry(operation_name(run_id), caller_token(request))
    return JSONResponse({"id": name.removeprefix("operations/"), "name": name})


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: str, request: Request, after: int = Query(0, ge=0)
) -> StreamingResponse:
    """Server-sent events while the run goes: ``run`` (the run page's data) first and after
    every state change, ``event`` for each of the run's events (its sequence as the SSE id, so
    a reader resumes with ?after=), and ``end`` once the run is done."""
    gateway, token = gateway_of(request), caller_token(request)
    name = operation_name(run_id)
    first = await gateway.run(name, token)  # a run that does not exist is a 404, not a stream
    resume = int(request.headers.get("last-event-id") or 0) if after == 0 else after

    async def frames() -> AsyncIterator[str]:
        yield _frame("run", detail(first))
        stream = gateway.events(name, resume, token)
        try:
            while (message := await stream.next()) is not None:
                event = message.event
                yield _frame(
                    "event",
                    MessageToDict(event, preserving_proto_field_name=True),
                    event.sequence,
                )
                if event.HasField("state"):
                    yield _frame("run", detail(await gateway.run(name, token)))
        finally:
            stream.close()
        yield _frame("run", detail(await gateway.run(name, token)))
        yield _frame("end", {})

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _frame(kind: str, data: Any, sequence: int | None = None) -> str:
    head = f"id: {sequence}\n" if sequence is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# --- reports ------------------------------------------------------------------------------------


async def report_folder(request: Request, run_id: str) -> Path:
    """The folder of the run's report artifact, where this process can read it."""
    run = await gateway_of(request).run(operation_name(run_id), caller_token(request))
    if not run.report.uri:
        raise NotFound(
            f"run {run_id} has no report yet (a run writes it when it ends)",
            reason="NO_REPORT",
            metadata={"run": run_id},
        )
    store = await shared_artifacts(request)
    return await asyncio.to_thread(local_report, run.report, store)


def local_report(report: common_pb2.Artifact, shared: ArtifactStore | None) -> Path:
    """The folder of a report artifact on this machine: where the gateway wrote it when that is
    here, else fetched (once, its digest checked) from ``shared``, the artifact store the
    gateway writes to (FORGELINE_ARTIFACT_URI)."""
    parsed = urlparse(report.uri)
    folder = Path(unquote(parsed.path))
    if parsed.scheme == "file" and folder.is_dir():
        return folder
    if shared is None:
        raise FailedPrecondition(
            f"the report {report.id} lies at {report.uri}, which this HTTP face cannot read: "
            "it reads reports from this machine's artifact folder, or from the shared store "
            "FORGELINE_ARTIFACT_URI names (set it to the gateway's)",
            reason="REPORT_NOT_LOCAL",
            metadata={"report": report.id},
        )
    return shared.verify(shared.get(report.id, kind="report"))


async def shared_artifacts(request: Request) -> ArtifactStore | None:
    """The shared artifact store the settings name (opened on first use, closed with the app),
    or None when the artifacts are this machine's alone."""
    state = request.app.state
    settings = state.settings
    if not settings.artifact_uri:
        return None
    async with state.opening:
        if getattr(state, "artifacts", None) is None:
            state.artifacts = await asyncio.to_thread(
                ArtifactStore, settings.artifacts_dir, shared=settings.artifact_uri
            )
    return state.artifacts


async def read_report(request: Request, run_id: str) -> dict[str, Any]:
    folder = await report_folder(request, run_id)
    return json.loads((folder / "report.json").read_text())


@router.get("/runs/{run_id}/report.json")
async def report_json(run_id: str, request: Request) -> JSONResponse:
    return JSONResponse(await read_report(request, run_id))


@router.get("/runs/{run_id}/report.html")
async def report_html(run_id: str, request: Request) -> FileResponse:
    """The run's report page as the gateway wrote it (self-contained: no script, no fetch)."""
    folder = await report_folder(request, run_id)
    return FileResponse(folder / "report.html", media_type="text/html")


@router.get("/compare")
async def compare_runs(
    request: Request,
    runs: str = Query(..., description="Two or more run ids, comma-separated."),
) -> JSONResponse:
    """Runs side by side from their report.json: config differences, every step's metrics with
    deltas against the first run, and their metric series for overlaid curves."""
    ids = [part.strip() for part in runs.split(",") if part.strip()]
    if not 2 <= len(set(ids)) <= MAX_COMPARED or len(set(ids)) != len(ids):
        raise InvalidArgument.for_field(
            "runs", f"name 2 to {MAX_COMPARED} different run ids, comma-separated"
        )
    docs = [await read_report(request, run_id) for run_id in ids]
    return JSONResponse(compare(ids, docs))


# --- deployments ----------------------------------------------------------------------------------


@router.get("/deployments")
async def deployments(request: Request) -> JSONResponse:
    """What is deployed: model, task (generative or a classifier), adapters, safety policy,
    counters."""
    upstream: Upstream = request.app.state.upstream
    found = await upstream.deployments(caller_token(request))
    rows = []
    for d in found:
        as_dict = MessageToDict(d, preserving_proto_field_name=True)
        as_dict["generative"] = d.task in ("causal_lm", "instruction", "seq2seq")
        rows.append(as_dict)
    return JSONResponse({"deployments": rows})
