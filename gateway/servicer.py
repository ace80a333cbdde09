"""forgeline.v1.PipelineService: gRPC <-> the gateway's domain (gateway/service.py), thin."""

from __future__ import annotations

import asyncio

from google.protobuf import json_format, struct_pb2

from forgeline import convert
from forgeline.convert import timestamp
from forgeline.errors import Cancelled, FailedPrecondition, ForgelineError, NotFound
from forgeline.gateway import report
from forgeline.gateway import runs as R
from forgeline.gateway.catalog import Checked
from forgeline.gateway.orchestrator import RunOutcome
from forgeline.gateway.runs import RunStore
from forgeline.gateway.service import Gateway
from forgeline.gateway.spec import Pipeline
from forgeline.logging import get_logger
from forgeline.operations import MethodSpec, OperationRow, page_offset
from forgeline.server import Kernel, ServiceDefinition
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb

log = get_logger(__name__)

SERVICE = "forgeline.v1.PipelineService"
SUBMIT = f"{SERVICE}/SubmitPipeline"
RETRY = f"{SERVICE}/RetryPipelineRun"
# WatchPipelineRuns: at most one page this often (a training step's metrics change many times a
# second), and a page rebuilt this often with no change seen (what changes outside the
# operation store: nothing known; a safety net, not a poll the list relies on).
WATCH_INTERVAL_S = 1.0
WATCH_RECHECK_S = 30.0
FINAL_STATES = {
    R.SUCCEEDED: common_pb2.OPERATION_STATE_SUCCEEDED,
    R.FAILED: common_pb2.OPERATION_STATE_FAILED,
    R.CANCELLED: common_pb2.OPERATION_STATE_CANCELLED,
}
STEP_STATES = {
    R.PENDING: pb.STEP_STATE_PENDING,
    R.RUNNING: pb.STEP_STATE_RUNNING,
    R.SUCCEEDED: pb.STEP_STATE_SUCCEEDED,
    R.FAILED: pb.STEP_STATE_FAILED,
    R.CANCELLED: pb.STEP_STATE_CANCELLED,
    R.SKIPPED: pb.STEP_STATE_SKIPPED,
}


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: gateway``."""
    store = RunStore(kernel.settings.home.expanduser() / "services" / "gateway" / "runs.db")
    gateway = Gateway(kernel.settings, store, kernel.audit.record if kernel.audit else None)
    servicer = PipelineServicer(kernel, gateway)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=pipeline_service_pb2_grpc.add_PipelineServiceServicer_to_server,
            methods=servicer.method_specs(),
            on_close=gateway.close,
        )
    ]


def planned(pipeline: Pipeline, checked: Checked) -> pb.ValidatePipelineResponse:
    """A valid pipeline's steps in running order, as ValidatePipeline answers (and `forgeline
    validate --offline` prints; a step whose service was not checked has no method)."""
    return pb.ValidatePipelineResponse(
        pipeline=pipeline.name,
        steps=[
            pb.PlannedStep(
                name=s.name,
                call=s.call,
                method=checked.methods.get(s.name, ""),
                depends_on=s.depends_on,
                gates=[g.expression for g in s.gates],
            )
            for s in pipeline.order()
        ],
    )


def _struct(value: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    json_format.ParseDict(value, out)
    return out


class PipelineServicer(pipeline_service_pb2_grpc.PipelineServiceServicer):
    def __init__(self, kernel: Kernel, gateway: Gateway) -> None:
        self._kernel, self._gateway = kernel, gateway
        self._ops = kernel.operations

    def method_specs(self) -> list[MethodSpec]:
        gateway = self._gateway

        def submit(r: pb.SubmitPipelineRequest, ctx) -> pb.SubmitPipelineResponse:
            outcome = gateway.run(ctx.name, r.pipeline_yaml, list(r.overrides), r.no_cache, ctx)
            return pb.SubmitPipelineResponse(run=self._finish(ctx.name, outcome))

        def retry(r: pb.RetryPipelineRunRequest, ctx) -> pb.RetryPipelineRunResponse:
            original = self._submitted(r.name)
            gateway.store.copy_succeeded(r.name, ctx.name)
            outcome = gateway.run(
                ctx.name, original.pipeline_yaml, list(original.overrides), original.no_cache, ctx
            )
            return pb.RetryPipelineRunResponse(run=self._finish(ctx.name, outcome))

        def check_retry(r: pb.RetryPipelineRunRequest) -> None:
            row = self._row(r.name)
            if not row.done or row.state == common_pb2.OPERATION_STATE_SUCCEEDED:
                state = common_pb2.OperationState.Name(row.state)
                raise FailedPrecondition(
                    f"run {r.name} is {state}; only a failed or cancelled run is retried",
                    reason="RUN_NOT_RETRYABLE",
                )

        return [
            MethodSpec(
                "SubmitPipeline",
                submit,
                lambda r: gateway.validate(r.pipeline_yaml, list(r.overrides)),
            ),
            MethodSpec("RetryPipelineRun", retry, check_retry),
        ]

    # --- building PipelineRun messages ---------------------------------------------------------
    def _row(self, name: str) -> OperationRow:
        try:
            row = self._ops.store.get(name)
        except NotFound:
            raise NotFound(f"no pipeline run {name!r}", reason="RUN_NOT_FOUND") from None
        if row.method not in (SUBMIT, RETRY):
            raise NotFound(f"{name} is not a pipeline run", reason="RUN_NOT_FOUND")
        return row

    def _submitted(self, name: str) -> pb.SubmitPipelineRequest:
        """The pipeline a run (or the run it retried) was submitted with."""
        row = self._row(name)
        if row.method == SUBMIT:
            return pb.SubmitPipelineRequest.FromString(row.request)
        return self._submitted(pb.RetryPipelineRunRequest.FromString(row.request).name)

    def _finish(self, name: str, outcome: RunOutcome) -> pb.PipelineRun:
        """Writes the run's report (whatever the outcome), then ends the run operation."""
        run = self.run_message(name)
        # Built as the operation ends: the response says what the operation is about to record.
        run.state, run.message = FINAL_STATES[outcome.state], outcome.message
        run.end_time.GetCurrentTime()
        try:
            run.report.CopyFrom(self._write_report(run))
        except Exception:  # a report we could not draw never fails the run it describes
            log.exception("report_failed", run=name)
        if outcome.state == R.CANCELLED:
            raise Cancelled(outcome.message, reason="RUN_CANCELLED")
        if outcome.state == R.FAILED:
            raise FailedPrecondition(outcome.message, reason="RUN_FAILED", metadata={"run": name})
        return run

    def _write_report(self, run: pb.PipelineRun) -> common_pb2.Artifact:
        """The run's report as an artifact, recorded on the run."""
        events, head = self._events(run.name), self._audit_head()
        record = report.publish(run, events, self._kernel.artifacts, SUBMIT, head)
        out = convert.artifact(record)
        self._gateway.store.set_report(name=run.name, report=json_format.MessageToDict(out))
        return out

    def _audit_head(self) -> dict | None:
        """The audit log's head once this run's events are delivered (None without an outbox;
        why, when it cannot be read: a report never fails for it)."""
        if self._kernel.audit is None:
            return None
        try:
            return self._kernel.audit.head(timeout=5.0).as_dict()
        except ForgelineError as exc:
            log.warning("audit_head_unknown", error=str(exc))
            return {"error": str(exc)}

    def _events(self, name: str) -> list:
        """The run's events, after those its kept steps streamed in the run it retried (only
        theirs: a step run again here brings its own)."""
        out = []
        row = self._row(name)
        if row.method == RETRY:
            previous = pb.RetryPipelineRunRequest.FromString(row.request).name
            kept = {
                step
                for step, s in self._gateway.store.steps(previous).items()
                if s.state == R.SUCCEEDED
            }
            out.extend(e for e in self._events(previous) if e.step in kept)
        after = 0
        while batch := self._ops.store.events(name, after, limit=1000):
            out.extend(batch)
            after = batch[-1].sequence
        return out

    def run_message(self, name: str) -> pb.PipelineRun:
        row = self._row(name)
        submitted = self._submitted(name)
        attempt = 1
        if row.method == RETRY:
            previous = pb.RetryPipelineRunRequest.FromString(row.request).name
            attempt = self.run_message(previous).attempt + 1
        steps = self._gateway.store.steps(name)
        try:
            validated = self._gateway.store.plan(name)
        except KeyError:  # accepted, not started yet
            validated = {}
        out = pb.PipelineRun(
            name=name,
            pipeline=self._gateway.store.pipeline_of(name),
            state=row.state,
            message=row.message,
            pipeline_yaml=submitted.pipeline_yaml,
            overrides=list(submitted.overrides),
            no_cache=submitted.no_cache,
            attempt=attempt,
            create_time=timestamp(row.create_time),
            end_time=timestamp(row.end_time),
        )
        saved = self._gateway.store.report(name)
        if saved:
            json_format.ParseDict(saved, out.report)
        # In the pipeline's order (the plan keeps the file's order), then anything else.
        names = [n for n in validated if n in steps] + sorted(set(steps) - set(validated))
        for step_name in names:
            s, plan = steps[step_name], validated.get(step_name, {})
            out.steps.append(
                pb.StepRun(
                    name=step_name,
                    call=plan.get("call", ""),
                    method=plan.get("method", ""),
                    depends_on=plan.get("depends_on", []),
                    state=STEP_STATES[s.state],
                    operation=s.operation,
                    address=s.address,
                    cached=s.cached,
                    request=_struct(s.request),
                    response=_struct(s.response),
                    metrics=s.metrics,
                    gates=[pb.GateResult(**g) for g in s.gates],
                    message=s.message,
                    start_time=timestamp(s.start_time),
                    end_time=timestamp(s.end_time),
                )
            )
        return out

    # --- RPCs --------------------------------------------------------------------------------
    async def ValidatePipeline(self, request, context):
        loop = asyncio.get_running_loop()
        validated = await loop.run_in_executor(
            None, self._gateway.validate, request.pipeline_yaml, list(request.overrides)
        )
        return planned(validated.pipeline, validated.checked)

    async def GetPipelineRun(self, request, context):
        loop = asyncio.get_running_loop()
        run = await loop.run_in_executor(None, self.run_message, request.name)
        return pb.GetPipelineRunResponse(run=run)

    async def ListPipelineRuns(self, request, context):
        return await self._page(
            request.pipeline, page_offset(request.page_token), request.page_size
        )

    async def WatchPipelineRuns(self, request, context):
        """The first page again whenever the gateway's operations change (a run submitted, a
        step's state, event or metric, a run's end: each is a write to the operation store, which
        wakes the wait), at most one page per WATCH_INTERVAL_S, and only when it differs."""
        store, sent = self._ops.store, None
        while True:
            seen = store.version
            page = await self._page(request.pipeline, 0, request.page_size)
            if page != sent:
                yield page
                sent = page
            await asyncio.sleep(WATCH_INTERVAL_S)
            await store.wait_change(seen, WATCH_RECHECK_S)

    async def _page(
        self, pipeline: str, offset: int, page_size: int
    ) -> pb.ListPipelineRunsResponse:
        size = min(page_size or 50, 500)
        loop = asyncio.get_running_loop()
        names = await loop.run_in_executor(
            None, self._gateway.store.runs, pipeline, offset, size + 1
        )
        runs = [await loop.run_in_executor(None, self.run_message, n) for n in names[:size]]
        token = str(offset + size) if len(names) > size else ""
        return pb.ListPipelineRunsResponse(runs=runs, next_page_token=token)

    async def CancelPipelineRun(self, request, context):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._row, request.name)
        await loop.run_in_executor(None, self._ops.cancel, request.name)
        run = await loop.run_in_executor(None, self.run_message, request.name)
        return pb.CancelPipelineRunResponse(run=run)
