"""Long-running operations: the SQLite store, the runner, and the two gRPC services over them.

Every method that can take more than a moment returns a google.longrunning.Operation at once; its
``metadata`` is forgeline.v1.OperationMetadata and, when done, ``response`` is the method's own
response message or ``error`` a google.rpc.Status. Events (progress, metric points, state
changes) are appended with a per-operation sequence number so a client can resume a stream.

Operations survive restarts: at start the runner resumes every unfinished operation whose method
is resumable (attempt + 1) and fails the rest with a reason. Nothing accepted is silently lost.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from forgeline.convert import timestamp
from forgeline.errors import (
    Cancelled,
    FailedPrecondition,
    ForgelineError,
    Internal,
    InvalidArgument,
    NotFound,
    excerpt,
    to_status,
)
from forgeline.logging import bound, get_logger
from forgeline.v1 import common_pb2, event_service_pb2, event_service_pb2_grpc

log = get_logger(__name__)
State = common_pb2.OperationState
_TERMINAL = {
    State.OPERATION_STATE_SUCCEEDED,
    State.OPERATION_STATE_FAILED,
    State.OPERATION_STATE_CANCELLED,
}
_IDLE_RECHECK_S = 1.0  # a waiter re-reads the store at least this often, woken or not


class Interrupted(Exception):
    """Raised inside an operation when the service is stopping; the operation resumes later."""


@dataclass
class OperationRow:
    name: str
    method: str
    request: bytes
    request_id: str
    state: int
    progress: float
    message: str
    metrics: dict[str, float]
    attempt: int
    response: bytes | None
    error: bytes | None
    create_time: float
    update_time: float
    end_time: float | None

    @property
    def done(self) -> bool:
        return self.state in _TERMINAL


class OperationStore:
    """Operations and their events in one SQLite database (WAL), safe across threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self.version = 0  # bumped on every write; readers wait for it instead of the database
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._waiters_lock = threading.Lock()  # never held while the database is
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS operations (
                    name TEXT PRIMARY KEY, method TEXT NOT NULL, request BLOB NOT NULL,
                    request_id TEXT NOT NULL, state INTEGER NOT NULL, progress REAL NOT NULL,
                    message TEXT NOT NULL, metrics TEXT NOT NULL, attempt INTEGER NOT NULL,
                    response BLOB, error BLOB, create_time REAL NOT NULL,
                    update_time REAL NOT NULL, end_time REAL);
                CREATE UNIQUE INDEX IF NOT EXISTS operations_request_id
                    ON operations (method, request_id) WHERE request_id != '';
                CREATE INDEX IF NOT EXISTS operations_open ON operations (state);
                CREATE TABLE IF NOT EXISTS events (
                    operation TEXT NOT NULL, sequence INTEGER NOT NULL, event BLOB NOT NULL,
                    PRIMARY KEY (operation, sequence));
                """
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _changed(self) -> None:
        """Under the lock, after a write: bump the version and wake every waiter."""
        self.version += 1
        with self._waiters_lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop is closed: nobody waits there any more
                pass

    async def wait_change(self, seen: int, timeout: float) -> None:
        """Returns once the version differs from ``seen`` (at once if it already does), or after
        ``timeout`` seconds. Woken by the write itself: no polling delay."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._waiters_lock:  # a write bumps the version before it reads the waiters
            if self.version != seen:
                return
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            pass
        finally:
            with self._waiters_lock:
                self._waiters.discard(waiter)

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)
            self._changed()

    def create(self, method: str, request: Message, request_id: str) -> OperationRow:
        """A new PENDING operation; with a known request_id, the operation it made before."""
        payload = request.SerializeToString(deterministic=True)
        now = time.time()
        with self._lock:
            if request_id:
                row = self._db.execute(
                    "SELECT * FROM operations WHERE method=? AND request_id=?", (method, request_id)
                ).fetchone()
                if row is not None:
                    if row["request"] != payload:
                        raise InvalidArgument.for_field(
                            "request_id",
                            f"{excerpt(request_id)} was already used for a different {method} "
                            f"request ({row['name']}); use a new request_id",
                        )
                    return _row(row)
            name = f"operations/{uuid.uuid4().hex}"
            self._db.execute(
                "INSERT INTO operations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    name,
                    method,
                    payload,
                    request_id,
                    State.OPERATION_STATE_PENDING,
                    0.0,
                    "queued",
                    "{}",
                    1,
                    None,
                    None,
                    now,
                    now,
                    None,
                ),
            )
            self._changed()
        return self.get(name)

    def get(self, name: str) -> OperationRow:
        with self._lock:
            row = self._db.execute("SELECT * FROM operations WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(
                f"no operation {excerpt(name)} in this service",
                reason="OPERATION_NOT_FOUND",
                metadata={"operation": name},
            )
        return _row(row)

    def find(self, method: str, request_id: str) -> OperationRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM operations WHERE method=? AND request_id=?", (method, request_id)
            ).fetchone()
        return _row(row) if row else None

    def list(self, *, done: bool | None, offset: int, limit: int) -> list[OperationRow]:
        query, args = "SELECT * FROM operations", []
        if done is not None:
            marks = ",".join("?" * len(_TERMINAL))
            query += f" WHERE state {'IN' if done else 'NOT IN'} ({marks})"
            args += list(_TERMINAL)
        query += " ORDER BY create_time DESC, name LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(query, [*args, limit, offset]).fetchall()
        return [_row(r) for r in rows]

    def unfinished(self) -> list[OperationRow]:
        marks = ",".join("?" * len(_TERMINAL))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM operations WHERE state NOT IN ({marks}) ORDER BY create_time",
                list(_TERMINAL),
            ).fetchall()
        return [_row(r) for r in rows]

    def set_running(self, name: str, attempt: int) -> None:
        self._write(
            "UPDATE operations SET state=?, attempt=?, update_time=? WHERE name=?",
            (State.OPERATION_STATE_RUNNING, attempt, time.time(), name),
        )

    def set_progress(self, name: str, progress: float, message: str) -> None:
        self._write(
            "UPDATE operations SET progress=?, message=?, update_time=? WHERE name=?",
            (progress, message, time.time(), name),
        )

    def merge_metrics(self, name: str, metrics: Mapping[str, float]) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT metrics FROM operations WHERE name=?", (name,)
            ).fetchone()
            merged = {**json.loads(row[0]), **{k: float(v) for k, v in metrics.items()}}
            self._db.execute(
                "UPDATE operations SET metrics=?, update_time=? WHERE name=?",
                (json.dumps(merged), time.time(), name),
            )
            self._changed()

    def finish(
        self,
        name: str,
        state: int,
        *,
        message: str,
        response: Message | None = None,
        error: status_pb2.Status | None = None,
    ) -> bool:
        """Ends the operation and appends its final state event in one transaction, so a
        reader that sees it done also sees its last event. False if it had already ended."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ended = self._db.execute(
                    "UPDATE operations SET state=?, message=?, response=?, error=?, "
                    "update_time=?, end_time=?, progress=CASE WHEN ?=? THEN 1.0 ELSE progress END "
                    f"WHERE name=? AND state NOT IN ({','.join('?' * len(_TERMINAL))})",
                    (
                        state,
                        message,
                        response.SerializeToString() if response else None,
                        error.SerializeToString() if error else None,
                        now,
                        now,
                        state,
                        State.OPERATION_STATE_SUCCEEDED,
                        name,
                        *_TERMINAL,
                    ),
                ).rowcount
                if ended:
                    self._insert_event(
                        name,
                        event_service_pb2.Event(
                            state=event_service_pb2.StateEvent(state=state, message=message)
                        ),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._changed()
        return bool(ended)

    def delete(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE operation=?", (name,))
            self._db.execute("DELETE FROM operations WHERE name=?", (name,))
            self._changed()

    def append_event(self, name: str, event: event_service_pb2.Event) -> int:
        with self._lock:
            seq = self._insert_event(name, event)
            self._changed()
        return seq

    def _insert_event(self, name: str, event: event_service_pb2.Event) -> int:
        """Under the lock: the event as the operation's next in sequence."""
        seq = self._db.execute(
            "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE operation=?", (name,)
        ).fetchone()[0]
        event.sequence, event.operation = seq, name
        if not event.HasField("time"):
            event.time.GetCurrentTime()
        self._db.execute(
            "INSERT INTO events VALUES (?,?,?)", (name, seq, event.SerializeToString())
        )
        return seq

    def events(self, name: str, after: int, limit: int = 500) -> list[event_service_pb2.Event]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM events WHERE operation=? AND sequence>? "
                "ORDER BY sequence LIMIT ?",
                (name, after, limit),
            ).fetchall()
        return [event_service_pb2.Event.FromString(r[0]) for r in rows]


def _row(row: sqlite3.Row) -> OperationRow:
    return OperationRow(
        name=row["name"],
        method=row["method"],
        request=row["request"],
        request_id=row["request_id"],
        state=row["state"],
        progress=row["progress"],
        message=row["message"],
        metrics=json.loads(row["metrics"]),
        attempt=row["attempt"],
        response=row["response"],
        error=row["error"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        end_time=row["end_time"],
    )


@dataclass(frozen=True)
class MethodSpec:
    """A long-running method as its servicer declares it, once: its name in the service's proto
    and how to check and run a request. The kernel reads its full name, request and response
    types from the proto and makes the handler that starts it (forgeline.longrunning), so a
    servicer writes no handler that repeats the name."""

    name: str  # the method's name in its service, e.g. "CleanDataset"
    run: Callable[[Any, OperationContext], Message]
    # Raises on a bad request before any operation is created. Runs in a worker thread.
    validate: Callable[[Any], object] | None = None
    # Re-run from the stored request after a restart (the run must be idempotent).
    resumable: bool = True


@dataclass(frozen=True)
class LongRunningMethod:
    """A declared method resolved against its proto: what the runner registers and runs."""

    method: str  # "forgeline.v1.DataService/CleanDataset"
    request_type: type[Message]
    response_type: type[Message]
    run: Callable[[Any, OperationContext], Message]
    validate: Callable[[Any], object] | None = None
    resumable: bool = True


class OperationContext:
    """What a running operation may tell the world. Domain code sees only these methods."""

    def __init__(
        self, store: OperationStore, name: str, cancel: threading.Event, stopping: threading.Event
    ) -> None:
        self._store, self.name = store, name
        self._cancel, self._stopping = cancel, stopping

    def progress(self, fraction: float, message: str = "", *, check: bool = True) -> None:
        """Records progress; first raises Cancelled / Interrupted when asked to stop, unless
        ``check`` is False (for code that handles stopping itself)."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if check:
            self.check_cancelled()
        self._store.set_progress(self.name, fraction, message)
        self._store.append_event(
            self.name,
            event_service_pb2.Event(
                progress=event_service_pb2.ProgressEvent(progress=fraction, message=message)
            ),
        )

    def metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        self._store.merge_metrics(self.name, values)
        points = [
            common_pb2.MetricPoint(name=k, value=float(v), step=step) for k, v in values.items()
        ]
        self._store.append_event(
            self.name,
            event_service_pb2.Event(metrics=event_service_pb2.MetricsEvent(points=points)),
        )

    def emit(self, event: event_service_pb2.Event) -> None:
        """Appends an event as it is (a pipeline run forwards its steps' events this way)."""
        self._store.append_event(self.name, event)

    def events(self) -> Iterator[event_service_pb2.Event]:
        """This operation's events so far, oldest first: a resumed attempt reads what its
        earlier attempts recorded (training records each step's metrics once)."""
        after = 0
        while batch := self._store.events(self.name, after):
            yield from batch
            after = batch[-1].sequence

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def stopping(self) -> bool:
        """The service is shutting down: stop at a point from which a restart can resume."""
        return self._stopping.is_set()

    def check_cancelled(self) -> None:
        if self._stopping.is_set():
            raise Interrupted(self.name)
        if self._cancel.is_set():
            raise Cancelled(f"operation {self.name} was cancelled", reason="OPERATION_CANCELLED")


class OperationRunner:
    """Creates operations, runs them in worker threads, recovers them after a restart."""

    def __init__(
        self, store: OperationStore, workers: int, mask: Callable[[str], str] | None = None
    ) -> None:
        self.store = store
        self._mask = mask  # hides the server's directories in the errors operations end with
        self._methods: dict[str, LongRunningMethod] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="operation")
        self._cancels: dict[str, threading.Event] = {}
        self._stopping = threading.Event()

    def register(self, spec: LongRunningMethod) -> None:
        self._methods[spec.method] = spec

    async def start(self, method: str, request: Message, request_id: str = "") -> OperationRow:
        """Validates ``request`` and starts an operation for it (or returns the earlier one)."""
        spec = self._methods[method]
        loop = asyncio.get_running_loop()
        if request_id:
            if await loop.run_in_executor(None, self.store.find, method, request_id):
                # The same request again returns its operation; a different one is refused.
                return await loop.run_in_executor(
                    None, self.store.create, method, request, request_id
                )
        if spec.validate is not None:
            await loop.run_in_executor(None, spec.validate, request)
        row = await loop.run_in_executor(None, self.store.create, method, request, request_id)
        if row.state == State.OPERATION_STATE_PENDING and row.name not in self._cancels:
            self._schedule(spec, row.name, request, attempt=1)
        return row

    def _schedule(self, spec: LongRunningMethod, name: str, request: Message, attempt: int) -> None:
        cancel = self._cancels.setdefault(name, threading.Event())
        self._executor.submit(self._run, spec, name, request, attempt, cancel)

    def _run(
        self,
        spec: LongRunningMethod,
        name: str,
        request: Message,
        attempt: int,
        cancel: threading.Event,
    ) -> None:
        ctx = OperationContext(self.store, name, cancel, self._stopping)
        with bound(operation=name, method=spec.method):
            try:
                ctx.check_cancelled()
                self.store.set_running(name, attempt)
                self._state_event(name, State.OPERATION_STATE_RUNNING, f"attempt {attempt}")
                log.info("operation_started", attempt=attempt)
                response = spec.run(request, ctx)
            except Interrupted:
                log.info("operation_interrupted")  # stays RUNNING; resumed at the next start
                return
            except Cancelled as exc:
                self._end(name, State.OPERATION_STATE_CANCELLED, exc)
            except ForgelineError as exc:
                self._end(name, State.OPERATION_STATE_FAILED, exc)
            except Exception as exc:
                log.exception("operation_crashed")
                self._end(
                    name,
                    State.OPERATION_STATE_FAILED,
                    Internal(
                        f"internal error in {spec.method} ({type(exc).__name__}); see the service "
                        f"log for operation {name}"
                    ),
                )
            else:
                self.store.finish(
                    name, State.OPERATION_STATE_SUCCEEDED, message="succeeded", response=response
                )
                log.info("operation_succeeded")
            finally:
                self._cancels.pop(name, None)

    def _end(self, name: str, state: int, error: ForgelineError) -> None:
        status = to_status(error, mask=self._mask)
        self.store.finish(name, state, message=status.message, error=status)
        log.info("operation_ended", state=State.Name(state), error=error.message)

    def _state_event(self, name: str, state: int, message: str) -> None:
        self.store.append_event(
            name,
            event_service_pb2.Event(
                state=event_service_pb2.StateEvent(state=state, message=message)
            ),
        )

    def cancel(self, name: str) -> OperationRow:
        row = self.store.get(name)
        if row.done:
            return row
        event = self._cancels.get(name)
        if event is None:  # not running in this process (e.g. left over and not resumable)
            self._end(
                name,
                State.OPERATION_STATE_CANCELLED,
                Cancelled(f"operation {name} was cancelled", reason="OPERATION_CANCELLED"),
            )
        else:
            event.set()
        return self.store.get(name)

    def recover(self) -> tuple[int, int]:
        """Resumes unfinished resumable operations, fails the others. Returns (resumed, failed)."""
        resumed = failed = 0
        for row in self.store.unfinished():
            spec = self._methods.get(row.method)
            if spec is not None and spec.resumable:
                attempt = row.attempt + (row.state == State.OPERATION_STATE_RUNNING)
                self._state_event(
                    row.name, row.state, f"service restarted; resuming (attempt {attempt})"
                )
                self._schedule(spec, row.name, spec.request_type.FromString(row.request), attempt)
                resumed += 1
            else:
                why = (
                    "this service no longer has the method"
                    if spec is None
                    else "the method cannot be resumed"
                )
                self._end(
                    row.name,
                    State.OPERATION_STATE_FAILED,
                    FailedPrecondition(
                        f"interrupted by a restart of the service and not resumed: {why}",
                        reason="OPERATION_INTERRUPTED",
                    ),
                )
                failed += 1
        if resumed or failed:
            log.info("operations_recovered", resumed=resumed, failed=failed)
        return resumed, failed

    def stop(self) -> None:
        """Asks running operations to stop at their next checkpoint; they resume at restart."""
        self._stopping.set()
        self._executor.shutdown(wait=True, cancel_futures=True)


def to_operation(
    row: OperationRow, response_type: type[Message] | None = None
) -> operations_pb2.Operation:
    """The google.longrunning.Operation view of a stored operation."""
    metadata = common_pb2.OperationMetadata(
        state=row.state,
        progress=row.progress,
        message=row.message,
        metrics=row.metrics,
        attempt=row.attempt,
        method=row.method,
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        end_time=timestamp(row.end_time),
        request_id=row.request_id,
    )
    op = operations_pb2.Operation(name=row.name, done=row.done)
    op.metadata.Pack(metadata)
    if row.error is not None:
        op.error.CopyFrom(status_pb2.Status.FromString(row.error))
    elif row.response is not None and response_type is not None:
        message = response_type.FromString(row.response)
        op.response.Pack(message)
    return op


class OperationsServicer(operations_pb2_grpc.OperationsServicer):
    """The standard google.longrunning.Operations service over one OperationRunner."""

    def __init__(self, runner: OperationRunner, response_types: Mapping[str, type[Message]]):
        self._runner = runner
        self._types = response_types

    def _op(self, row: OperationRow) -> operations_pb2.Operation:
        return to_operation(row, self._types.get(row.method))

    async def GetOperation(self, request, context):
        return self._op(await asyncio.to_thread(self._runner.store.get, request.name))

    async def ListOperations(self, request, context):
        done = {"": None, "done=true": True, "done=false": False}.get(request.filter.strip())
        if request.filter.strip() and done is None:
            raise InvalidArgument.for_field("filter", "supported filters: done=true, done=false")
        offset = page_offset(request.page_token)
        size = min(request.page_size or 50, 500)
        rows = await asyncio.to_thread(
            self._runner.store.list, done=done, offset=offset, limit=size + 1
        )
        return operations_pb2.ListOperationsResponse(
            operations=[self._op(r) for r in rows[:size]],
            next_page_token=str(offset + size) if len(rows) > size else "",
        )

    async def CancelOperation(self, request, context):
        await asyncio.to_thread(self._runner.cancel, request.name)
        return empty_pb2.Empty()

    async def DeleteOperation(self, request, context):
        row = await asyncio.to_thread(self._runner.store.get, request.name)
        if not row.done:
            raise FailedPrecondition(
                f"operation {request.name} is still running; cancel it first",
                reason="OPERATION_RUNNING",
            )
        await asyncio.to_thread(self._runner.store.delete, request.name)
        return empty_pb2.Empty()

    async def WaitOperation(self, request, context):
        limit = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else 60
        deadline = time.monotonic() + min(limit, 3600)
        store = self._runner.store
        while True:
            seen = store.version
            row = await asyncio.to_thread(store.get, request.name)
            if row.done or time.monotonic() >= deadline:
                return self._op(row)
            await store.wait_change(seen, deadline - time.monotonic())


async def _follow(store: OperationStore, name: str) -> AsyncIterator[OperationRow]:
    """Yields the operation now and after every change of the store, forever."""
    while True:
        seen = store.version
        yield await asyncio.to_thread(store.get, name)
        while store.version == seen:
            await store.wait_change(seen, _IDLE_RECHECK_S)


class EventServicer(event_service_pb2_grpc.EventServiceServicer):
    """StreamEvents: the operation's events after a sequence number, then live ones until done."""

    def __init__(self, store: OperationStore) -> None:
        self._store = store

    async def StreamEvents(self, request, context):
        if not request.operation:
            raise InvalidArgument.for_field("operation", "an operation name is required")
        after = request.after_sequence
        async for row in _follow(self._store, request.operation):
            while batch := await asyncio.to_thread(self._store.events, request.operation, after):
                for event in batch:
                    yield event_service_pb2.StreamEventsResponse(event=event)
                after = batch[-1].sequence
            if row.done or request.no_follow:
                return


def page_offset(token: str) -> int:
    if not token:
        return 0
    # ASCII digits only ("²" is a digit int() refuses); 18 digits is past any real offset.
    if not (token.isascii() and token.isdigit()) or len(token) > 18:
        raise InvalidArgument.for_field(
            "page_token", f"{excerpt(token)} is not a token this API issued"
        )
    return int(token)
