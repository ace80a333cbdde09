"""What `forgeline run` shows of a run while it goes, from the run's event stream.

On a terminal, commands.py draws a live table of ``rows``; anywhere else (a file, a pipe, a CI
log) it prints ``StepLines``: one line per step state change and, for a long step, a progress
line at most every ``every_s`` seconds when the step's progress or message changed::

    19:03:10  run operations/3f2a  3 steps: ingest, train, evaluate
    19:03:11  ingest    RUNNING    dta.IngestDataset on 127.0.0.1:50051
    19:03:14  ingest    SUCCEEDED  3.1s  num_rows=120
    19:03:14  train     RUNNING    trn.Train on 127.0.0.1:50052
    19:03:45  train     12%        epoch 1/8  loss=0.6931
    19:07:26  train     SUCCEEDED  4m12s  accuracy=0.91  loss=0.12
    19:07:26  evaluate  FAILED     2.0s  gate failed: accuracy 0.91 below the gate >= 0.95
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
PROGRESS_EVERY_S = 30.0  # the most often a step's progress line comes in a log


def new_rows(order: list[str]) -> dict[str, dict[str, Any]]:
    """Each step's state, progress, message and latest metrics, before any event."""
    return {
        name: {"state": "PENDING", "progress": 0.0, "metrics": {}, "message": ""} for name in order
    }


def state_name(event) -> str:
    """The step state a state event says: RUNNING, SUCCEEDED, ... (SKIPPED: see orchestrator)."""
    from forgeline.v1 import common_pb2

    name = common_pb2.OperationState.Name(event.state.state).removeprefix("OPERATION_STATE_")
    return "SKIPPED" if event.state.message.startswith("skipped:") else name


def apply(rows: dict[str, dict[str, Any]], event) -> None:
    """One event of the run's stream into ``rows`` (the run's own events, no step, change none)."""
    if not event.step or event.step not in rows:
        return
    row = rows[event.step]
    if event.HasField("progress"):
        row["progress"] = event.progress.progress
        row["message"] = event.progress.message
    elif event.HasField("metrics"):
        for point in event.metrics.points:
            row["metrics"].pop(point.name, None)  # the latest updated last
            row["metrics"][point.name] = point.value
    elif event.HasField("state"):
        name = state_name(event)
        row["state"] = name
        row["message"] = event.state.message
        if name == "SUCCEEDED":
            row["progress"] = 1.0


def headline(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """At most four of a step's metrics: evaluation and row counts first, per-plugin ones last."""
    ranked = sorted(metrics.items(), key=lambda kv: ("." in kv[0], "seconds" in kv[0], kv[0]))
    return ranked[:4]


def duration(seconds: float) -> str:
    """3.1s, 42s, 4m12s, 1h03m05s."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _number(value: float) -> str:
    from forgeline.gateway.spec import number

    return number(value)


def _metrics(pairs) -> str:
    return " ".join(f"{name}={_number(value)}" for name, value in pairs)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class _Seen:
    """What StepLines keeps of a step beyond its row: when it ran, what the log last said."""

    started: float | None = None  # the time of its RUNNING event
    line_at: float | None = None  # the time of its last line
    shown: tuple[str, str] = ("", "")  # the progress and message its last line stood for
    reported_at: float | None = None  # the time of its latest progress event
    pending: bool = False  # progress or message changed since its last line


@dataclass
class StepLines:
    """The run's events as log lines, through ``emit`` (one string a line, no markup).

    A step's state change is a line at once. A progress line waits until ``every_s`` seconds
    after the step's last line and goes out only if the step's progress (as a whole percent) or
    message changed since; it carries the step's latest metrics. The times are the events' own
    (the service's clock), so a stream resumed after a reconnect keeps its durations; ``clock``
    stands in for an event without one, and is what ``flush`` compares to when called alone."""

    order: list[str]
    emit: Callable[[str], None]
    every_s: float = PROGRESS_EVERY_S
    clock: Callable[[], float] = time.time
    rows: dict[str, dict[str, Any]] = field(init=False)
    _seen: dict[str, _Seen] = field(init=False)
    _width: int = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rows = new_rows(self.order)
        self._seen = {name: _Seen() for name in self.order}
        self._width = max((len(name) for name in self.order), default=0)

    def header(self, run: str) -> None:
        steps = ", ".join(self.order)
        count = f"{len(self.order)} step{'' if len(self.order) == 1 else 's'}"
        self._line(self.clock(), f"run {run}  {count}: {steps}")

    def event(self, event) -> None:
        """One event of the run's stream, in sequence order."""
        now = event.time.ToNanoseconds() / 1e9 if event.HasField("time") else self.clock()
        with self._lock:
            name = event.step
            if name in self.rows:
                self._step_event(name, event, now)
            self._flush(now)

    def flush(self, now: float | None = None) -> None:
        """The progress lines due at ``now`` (default: the clock), when no event brings them."""
        with self._lock:
            self._flush(self.clock() if now is None else now)

    @contextlib.contextmanager
    def ticking(self, period_s: float = 5.0) -> Iterator[None]:
        """Flushes every ``period_s`` seconds in a thread while the block runs: a step that
        reported progress and then went quiet still has it in the log within ``every_s``."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(period_s):
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - the output went away: the main thread says so
                    return

        thread = threading.Thread(target=tick, name="run-output", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=period_s)

    # --- under the lock ---------------------------------------------------------------------------

    def _step_event(self, name: str, event, now: float) -> None:
        row, seen = self.rows[name], self._seen[name]
        before = row["state"]
        apply(self.rows, event)
        if event.HasField("state"):
            state = row["state"]
            if state == before:
                return  # the same state said again (a resumed stream): no change to log
            if state == "RUNNING":
                seen.started = now
            self._line(now, self._state_line(name, now))
            seen.line_at, seen.pending = now, False
            seen.shown = (self._percent(row), row["message"])
        elif event.HasField("progress") and row["state"] not in FINAL:
            seen.reported_at = now
            seen.pending = (self._percent(row), row["message"]) != seen.shown

    def _flush(self, now: float) -> None:
        for name in self.order:
            seen, row = self._seen[name], self.rows[name]
            if not seen.pending or row["state"] in FINAL:
                continue
            if seen.line_at is not None and now - seen.line_at < self.every_s:
                continue
            at = seen.reported_at if seen.reported_at is not None else now
            metrics = list(row["metrics"].items())[-3:]
            words = [f"{self._percent(row):<9}", _one_line(row["message"]), _metrics(metrics)]
            self._line(at, self._step(name, *words))
            seen.line_at, seen.pending = now, False
            seen.shown = (self._percent(row), row["message"])

    def _state_line(self, name: str, now: float) -> str:
        row, seen = self.rows[name], self._seen[name]
        state, message = row["state"], _one_line(row["message"])
        if state == "RUNNING":
            return self._step(name, f"{state:<9}", message)
        if state == "SKIPPED":
            return self._step(name, f"{state:<9}", message.removeprefix("skipped:").strip())
        took = duration(now - seen.started) if seen.started is not None else ""
        if state == "SUCCEEDED" and message == "succeeded":
            message = ""  # says nothing the state does not
        return self._step(name, f"{state:<9}", took, message, _metrics(headline(row["metrics"])))

    def _step(self, name: str, *words: str) -> str:
        return "  ".join([name.ljust(self._width), *(w for w in words if w)]).rstrip()

    @staticmethod
    def _percent(row: dict[str, Any]) -> str:
        return f"{row['progress']:.0%}"

    def _line(self, at: float, text: str) -> None:
        self.emit(f"{datetime.fromtimestamp(at).strftime('%H:%M:%S')}  {text}")
