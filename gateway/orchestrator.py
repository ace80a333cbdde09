"""Running a checked pipeline: its steps as service operations, in dependency order, at once where
they are independent.

Each step: resolve its references from the outputs of the steps it depends on; look up the cache
(same method, same resolved request, same forgeline version; a hit counts only when every artifact
in the cached response still exists and matches its digest); else submit to the service with the
idempotency key `RUN/STEP` (a gateway that died between submitting and recording gets the same
operation back when it submits again), record the service operation at once, follow its events
into the run's stream (tagged with the step), read its response, then judge the step's gates. A
failed step or gate skips everything downstream; independent branches finish. Cancelling the run
cancels the running service operations.

After a gateway restart the kernel runs the same run again: finished steps are kept as they are,
running ones are re-attached by their recorded operation, and only steps that never started are
submitted.

The audit log hears of every run (when it starts or resumes, and how it ends) and every
promotion decision (a step's gates, passed or not, with the models its response names); the
services record the models they commit themselves.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import forgeline
from forgeline.artifacts import sha256_path
from forgeline.errors import Cancelled, FailedPrecondition, ForgelineError, Internal
from forgeline.gateway import runs as R
from forgeline.gateway.catalog import Checked
from forgeline.gateway.remote import RemoteService
from forgeline.gateway.spec import Gate, Pipeline, Step, lookup, resolve
from forgeline.logging import get_logger
from forgeline.operations import Interrupted
from forgeline.v1 import common_pb2, event_service_pb2

log = get_logger("forgeline.gateway")

MAX_PARALLEL_STEPS = 4


class GateFailed(FailedPrecondition):
    reason = "GATE_FAILED"


@dataclass
class RunOutcome:
    state: str  # SUCCEEDED, FAILED or CANCELLED
    message: str


# Records an audit event: (kind, subject, details).
Audit = Callable[[str, str, dict[str, Any]], Any]
MODEL_KINDS = ("ARTIFACT_KIND_MODEL", "ARTIFACT_KIND_ADAPTER")


class Orchestrator:
    def __init__(
        self,
        store: R.RunStore,
        services: Callable[[str], RemoteService],
        poll_seconds: float = 0.5,
        audit: Audit | None = None,
    ) -> None:
        self.store = store
        self.services = services
        self.poll_seconds = poll_seconds
        self._audit = audit

    def _record(self, kind: str, subject: str, details: dict[str, Any]) -> None:
        """Sends an event to the audit log; a full outbox is logged, it does not fail the run."""
        if self._audit is None:
            return
        try:
            self._audit(kind, subject, _finite(details))
        except ForgelineError as exc:
            log.error("audit_not_recorded", kind=kind, subject=subject, error=str(exc))

    def run(
        self,
        run: str,
        pipeline: Pipeline,
        checked: Checked,
        ctx,
        no_cache: bool = False,
    ) -> RunOutcome:
        """Runs (or resumes) ``run`` to its end. ``ctx`` is the run operation's context."""
        steps = [s.name for s in pipeline.steps]
        self._record(
            "pipeline_run", run, {"pipeline": pipeline.name, "state": "RUNNING", "steps": steps}
        )
        outcome = self._run(run, pipeline, checked, ctx, no_cache)
        self._record(
            "pipeline_run",
            run,
            {"pipeline": pipeline.name, "state": outcome.state, "message": outcome.message},
        )
        return outcome

    def _run(self, run: str, pipeline: Pipeline, checked: Checked, ctx, no_cache: bool):
        plan = {
            s.name: {"call": s.call, "method": checked.methods[s.name], "depends_on": s.depends_on}
            for s in pipeline.steps
        }
        self.store.add_run(run, pipeline.name, plan)
        rows = self.store.steps(run)
        cancel = threading.Event()
        futures: dict[Future, Step] = {}
        failures: list[str] = []
        interrupted: Interrupted | None = None
        total = len(pipeline.steps)

        def state(name: str) -> str:
            return rows[name].state

        with ThreadPoolExecutor(MAX_PARALLEL_STEPS, thread_name_prefix="step") as pool:
            while True:
                if ctx.cancelled():
                    cancel.set()
                stopping = ctx.stopping()  # the gateway is shutting down: start nothing more
                for step in [] if stopping else pipeline.order():
                    if state(step.name) in R.FINISHED or step in futures.values():
                        continue
                    blocked = [d for d in step.depends_on if state(d) in R.FINISHED - {R.SUCCEEDED}]
                    if blocked or cancel.is_set():
                        why = (
                            "the run was cancelled"
                            if cancel.is_set()
                            else f"{', '.join(blocked)} did not succeed"
                        )
                        self._set(run, step.name, rows, state=R.SKIPPED, message=why)
                        ctx.emit(_state_event(step.name, "SKIPPED", f"skipped: {why}"))
                        continue
                    if all(state(d) == R.SUCCEEDED for d in step.depends_on):
                        future = pool.submit(
                            self._step, run, step, checked, rows, ctx, cancel, no_cache
                        )
                        futures[future] = step
                if not futures:
                    break
                done, _ = wait(
                    list(futures), timeout=self.poll_seconds, return_when=FIRST_COMPLETED
                )
                for future in done:
                    step = futures.pop(future)
                    error = future.exception()
                    if isinstance(error, Interrupted):
                        interrupted = error
                    elif error is not None:
                        failures.append(f"{step.name}: {error}")
                finished = sum(1 for s in pipeline.steps if state(s.name) in R.FINISHED)
                if done:
                    ctx.progress(
                        finished / total, f"{finished} of {total} steps finished", check=False
                    )

        if interrupted is not None or ctx.stopping():
            raise interrupted or Interrupted(run)
        if cancel.is_set():
            return RunOutcome(R.CANCELLED, "the run was cancelled")
        if failures or any(state(s.name) != R.SUCCEEDED for s in pipeline.steps):
            failed = [s.name for s in pipeline.steps if state(s.name) == R.FAILED]
            first = rows[failed[0]].message if failed else "; ".join(failures)
            return RunOutcome(R.FAILED, f"step {failed[0] if failed else '?'} failed: {first}")
        return RunOutcome(R.SUCCEEDED, f"{total} steps succeeded")

    # --- one step --------------------------------------------------------------------------------
    def _set(self, run: str, step: str, rows: dict[str, R.StepRow], **values: Any) -> None:
        self.store.update(run, step, **values)
        for key, value in values.items():
            setattr(rows[step], key, value)

    def _step(self, run, step: Step, checked: Checked, rows, ctx, cancel, no_cache):
        row = rows[step.name]
        try:
            outputs = {d: rows[d].response for d in step.depends_on if rows[d].response}
            request = resolve(step.request, outputs)
            method = checked.methods[step.name].rsplit("/", 1)[1]
            service = self.services(step.service)
            key = cache_key(checked.methods[step.name], request)
            if row.state == R.PENDING:
                hit = None if (no_cache or not step.cache) else self._cache_hit(key)
                if hit is not None:
                    response, metrics, source = hit
                    self._set(
                        run,
                        step.name,
                        rows,
                        state=R.RUNNING,
                        cached=True,
                        request=request,
                        response=response,
                        metrics=metrics,
                        start_time=time.time(),
                        message=f"reused the result of {source}",
                    )
                    ctx.emit(_state_event(step.name, "RUNNING", f"cache hit: {source}"))
                    return self._judge(run, step, checked, rows, ctx, response, metrics, key=None)
                self._set(
                    run,
                    step.name,
                    rows,
                    state=R.RUNNING,
                    start_time=time.time(),
                    address=service.address,
                    request=request,
                )
                ctx.emit(_state_event(step.name, "RUNNING", f"{step.call} on {service.address}"))
            if not row.operation:
                # Recorded before anything else happens, so a restart re-attaches to it.
                operation = service.submit(method, request, request_id=f"{run}/{step.name}")
                self._set(run, step.name, rows, operation=operation)
            elif row.cached:
                return self._judge(run, step, checked, rows, ctx, row.response, row.metrics, None)
            response, metrics = self._follow(run, step, service, method, rows, ctx, cancel)
            return self._judge(run, step, checked, rows, ctx, response, metrics, key=key)
        except Interrupted:
            raise  # the gateway is stopping: the step stays RUNNING and is re-attached later
        except Cancelled as exc:
            self._set(
                run, step.name, rows, state=R.CANCELLED, message=str(exc), end_time=time.time()
            )
            ctx.emit(_state_event(step.name, "CANCELLED", str(exc)))
        except ForgelineError as exc:
            self._fail(run, step, rows, ctx, str(exc))
            raise
        except Exception as exc:  # a bug of ours: the step fails with a clear line, not a hang
            log.exception("step_crashed", run=run, step=step.name)
            self._fail(
                run, step, rows, ctx, f"internal error in the gateway ({type(exc).__name__})"
            )
            raise Internal(f"step {step.name} crashed in the gateway") from exc

    def _follow(self, run, step, service: RemoteService, method, rows, ctx, cancel):
        """Polls the service operation to its end, forwarding its events; cancels it when the
        run is cancelled; on the gateway's own shutdown leaves it running (Interrupted)."""
        row = rows[step.name]

        def forward(event: event_service_pb2.Event) -> None:
            tagged = event_service_pb2.Event()
            tagged.CopyFrom(event)
            tagged.step, tagged.operation, tagged.sequence = step.name, "", 0
            if event.HasField("metrics"):
                self.store.merge_metrics(
                    run, step.name, {p.name: p.value for p in event.metrics.points}
                )
            ctx.emit(tagged)
            row.last_event = event.sequence

        cancel_sent = False
        while True:
            if ctx.stopping():
                raise Interrupted(run)
            if (cancel.is_set() or ctx.cancelled()) and not cancel_sent:
                cancel.set()
                service.cancel(row.operation)
                cancel_sent = True
            # Returns the moment the operation ends, so a short step costs no idle poll.
            operation = service.wait(row.operation, self.poll_seconds)
            service.events(row.operation, forward, after_sequence=row.last_event)
            self.store.update(run, step.name, last_event=row.last_event)
            if operation.done:
                break
        metadata = service.metadata(operation)
        if metadata.state == common_pb2.OPERATION_STATE_CANCELLED:
            raise Cancelled(f"{step.name} was cancelled", reason="OPERATION_CANCELLED")
        response = service.result(method, operation)
        return response, {**self.store.steps(run)[step.name].metrics, **dict(metadata.metrics)}

    def _judge(self, run, step: Step, checked: Checked, rows, ctx, response, metrics, key):
        verdicts = []
        failed = []
        for gate in step.gates:
            path = checked.gate_metrics[(step.name, gate.expression)]
            verdict = judge(gate, path, response, metrics)
            verdicts.append(verdict)
            if not verdict["passed"]:
                failed.append(verdict["message"])
        if step.gates:
            self._record(
                "promotion",
                f"{run}/{step.name}",
                {
                    "run": run,
                    "step": step.name,
                    "method": checked.methods[step.name],
                    "promoted": not failed,
                    "models": [m["id"] for m in models(response)],
                    "cached": key is None,
                    "gates": verdicts,
                },
            )
        if failed:
            message = "gate failed: " + "; ".join(failed)
            self._set(run, step.name, rows, response=response, metrics=metrics, gates=verdicts)
            raise GateFailed(message, metadata={"step": step.name})
        self._set(
            run,
            step.name,
            rows,
            state=R.SUCCEEDED,
            response=response,
            metrics=metrics,
            gates=verdicts,
            end_time=time.time(),
            message=rows[step.name].message or "succeeded",
        )
        if key is not None and step.cache:
            self.store.remember(key, run, step.name, response, metrics)
        ctx.emit(_state_event(step.name, "SUCCEEDED", rows[step.name].message))

    def _fail(self, run, step: Step, rows, ctx, message: str) -> None:
        self._set(run, step.name, rows, state=R.FAILED, message=message, end_time=time.time())
        ctx.emit(_state_event(step.name, "FAILED", message))

    def _cache_hit(self, key: str):
        found = self.store.cached(key)
        if found is None:
            return None
        response, metrics, run, step = found
        for uri, digest in artifacts(response):
            if not artifact_intact(uri, digest):
                self.store.forget(key)
                log.info("cache_stale", key=key, uri=uri)
                return None
        return response, metrics, f"{run} step {step}"


# --- pure helpers ------------------------------------------------------------------------------


def cache_key(method: str, request: dict[str, Any]) -> str:
    payload = json.dumps(
        {"method": method, "request": request, "forgeline": forgeline.__version__},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def artifacts(value: Any) -> list[tuple[str, str]]:
    """(uri, sha256) of every Artifact message inside a response dict."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if isinstance(value.get("uri"), str) and isinstance(value.get("sha256"), str):
            found.append((value["uri"], value["sha256"]))
        for item in value.values():
            found.extend(artifacts(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(artifacts(item))
    return found


def models(response: dict[str, Any]) -> list[dict[str, str]]:
    """Every model or adapter artifact a response names, once each: id, kind and digest."""
    found: dict[str, dict[str, str]] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("kind") in MODEL_KINDS and isinstance(value.get("id"), str):
                found.setdefault(
                    value["id"],
                    {
                        "id": value["id"],
                        "kind": value["kind"].removeprefix("ARTIFACT_KIND_").lower(),
                        "sha256": str(value.get("sha256", "")),
                    },
                )
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(response)
    return list(found.values())


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (the audit log keeps strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def artifact_intact(uri: str, digest: str) -> bool:
    """The content at ``uri`` exists here and still has ``digest``. A URI this gateway cannot
    read counts as not intact: the step runs again rather than trusting what it cannot check."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or not digest:
        return False
    path = Path(unquote(parsed.path))
    return path.exists() and sha256_path(path) == digest


def judge(gate: Gate, path: str, response: dict[str, Any], metrics: dict[str, float]) -> dict:
    try:
        value = float(lookup(response, path.split(".")))
    except (KeyError, IndexError, TypeError, ValueError):
        if gate.metric in metrics:
            value = float(metrics[gate.metric])
        else:
            return {
                "expression": gate.expression,
                "metric": gate.metric,
                "value": float("nan"),
                "threshold": gate.threshold,
                "passed": False,
                "message": f"{gate.metric} was not emitted",
            }
    return {
        "expression": gate.expression,
        "metric": gate.metric,
        "value": value,
        "threshold": gate.threshold,
        "passed": gate.passes(value),
        "message": gate.verdict(value),
    }


def _state_event(step: str, state: str, message: str) -> event_service_pb2.Event:
    mapping = {
        "RUNNING": common_pb2.OPERATION_STATE_RUNNING,
        "SUCCEEDED": common_pb2.OPERATION_STATE_SUCCEEDED,
        "FAILED": common_pb2.OPERATION_STATE_FAILED,
        "CANCELLED": common_pb2.OPERATION_STATE_CANCELLED,
        "SKIPPED": common_pb2.OPERATION_STATE_CANCELLED,
    }
    return event_service_pb2.Event(
        step=step,
        state=event_service_pb2.StateEvent(state=mapping[state], message=message),
    )
