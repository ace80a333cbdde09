"""forgeline.operations: the SQLite operation store and the runner, driven directly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2
from google.rpc import status_pb2

from forgeline.errors import (
    Cancelled,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    from_status,
)
from forgeline.operations import (
    LongRunningMethod,
    OperationContext,
    OperationRow,
    OperationRunner,
    OperationStore,
    to_operation,
)
from forgeline.v1 import common_pb2

State = common_pb2.OperationState
METHOD = "forgeline.v1.TestService/Shout"
Request = Response = wrappers_pb2.StringValue


def shout(request: Request, ctx: OperationContext) -> Response:
    ctx.progress(0.5, "half way")
    ctx.metrics({"letters": len(request.value)}, step=1)
    return Response(value=request.value.upper())


def spec(run: Callable = shout, **kwargs) -> LongRunningMethod:
    return LongRunningMethod(METHOD, Request, Response, run, **kwargs)


class Harness:
    """A store and a runner on one SQLite file, reopened as a restarted service would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = OperationStore(path)
        self.runner = OperationRunner(self.store, workers=2)

    def start(self, value: str = "hello", request_id: str = "") -> OperationRow:
        return asyncio.run(self.runner.start(METHOD, Request(value=value), request_id))

    def wait(self, name: str, timeout: float = 10.0) -> OperationRow:
        deadline = time.monotonic() + timeout
        while not (row := self.store.get(name)).done:
            assert time.monotonic() < deadline, f"{name} still {State.Name(row.state)}"
            time.sleep(0.01)
        return row

    def close(self) -> None:
        self.runner.stop()
        self.store.close()


@pytest.fixture
def ops(tmp_path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "operations.db")
    yield harness
    harness.close()


def error_of(row: OperationRow):
    return from_status(status_pb2.Status.FromString(row.error))


def test_an_operation_runs_to_succeeded_with_its_response(ops):
    ops.runner.register(spec())
    started = ops.start("hello")
    assert started.state in (State.OPERATION_STATE_PENDING, State.OPERATION_STATE_RUNNING)
    row = ops.wait(started.name)
    assert row.state == State.OPERATION_STATE_SUCCEEDED
    assert Response.FromString(row.response).value == "HELLO"
    assert (row.progress, row.attempt, row.error) == (1.0, 1, None)
    assert row.metrics == {"letters": 5.0}
    assert row.end_time is not None and row.end_time >= row.create_time

    op = to_operation(row, Response)
    assert op.done and op.name == started.name
    unpacked, metadata = Response(), common_pb2.OperationMetadata()
    assert op.response.Unpack(unpacked) and unpacked.value == "HELLO"
    assert op.metadata.Unpack(metadata)
    assert (metadata.state, metadata.method) == (State.OPERATION_STATE_SUCCEEDED, METHOD)


def test_a_forgeline_error_ends_failed_with_its_code_reason_and_fields(ops):
    def refuse(request, ctx):
        raise InvalidArgument.for_field("value", "must be shorter", reason="TOO_LONG")

    ops.runner.register(spec(refuse))
    row = ops.wait(ops.start().name)
    assert row.state == State.OPERATION_STATE_FAILED
    assert row.response is None
    error = error_of(row)
    assert type(error) is InvalidArgument
    assert error.reason == "TOO_LONG"
    assert [v.field for v in error.violations] == ["value"]
    assert row.message == "value: must be shorter"
    assert to_operation(row, Response).error.code == error.code.value[0]


def test_an_unexpected_exception_ends_failed_internal_without_its_details(ops):
    def crash(request, ctx):
        raise KeyError("secret-column-name in /srv/private/path")

    ops.runner.register(spec(crash))
    row = ops.wait(ops.start().name)
    assert row.state == State.OPERATION_STATE_FAILED
    error = error_of(row)
    assert type(error) is Internal
    assert METHOD in error.message and row.name in error.message
    for leak in ("secret-column-name", "/srv/private", "Traceback", 'File "'):
        assert leak not in error.message


def test_a_failing_validate_creates_no_operation(ops):
    ran = threading.Event()

    def check(request):
        raise InvalidArgument.for_field("value", "empty")

    ops.runner.register(spec(lambda request, ctx: ran.set() or Response(), validate=check))
    with pytest.raises(InvalidArgument):
        ops.start("")
    assert ops.store.list(done=None, offset=0, limit=10) == []
    assert not ran.is_set()


def test_the_same_request_id_returns_the_same_operation(ops):
    runs = []

    def count(request, ctx):
        runs.append(request.value)
        return Response(value="done")

    ops.runner.register(spec(count))
    first = ops.start("hello", request_id="req-1")
    again = ops.start("hello", request_id="req-1")
    assert again.name == first.name
    ops.wait(first.name)
    after_done = ops.start("hello", request_id="req-1")
    assert after_done.name == first.name and after_done.done
    assert len(ops.store.list(done=None, offset=0, limit=10)) == 1
    assert runs == ["hello"]
    assert ops.store.find(METHOD, "req-1").name == first.name


def test_a_different_request_with_a_used_request_id_is_refused(ops):
    ops.runner.register(spec())
    first = ops.start("hello", request_id="req-1")
    with pytest.raises(InvalidArgument) as caught:
        ops.start("goodbye", request_id="req-1")
    assert [v.field for v in caught.value.violations] == ["request_id"]
    assert first.name in caught.value.message
    assert len(ops.store.list(done=None, offset=0, limit=10)) == 1


def test_events_have_increasing_sequences_and_resume_after_one(ops):
    def steps(request, ctx):
        for i in range(5):
            ctx.progress(i / 5, f"step {i}")
        ctx.metrics({"loss": 0.5}, step=5)
        return Response()

    ops.runner.register(spec(steps))
    name = ops.wait(ops.start().name).name
    events = ops.store.events(name, after=0)
    # RUNNING, five progress events, one metrics event, SUCCEEDED.
    assert [e.sequence for e in events] == list(range(1, 9))
    assert all(e.operation == name for e in events)
    assert [e.WhichOneof("payload") for e in (events[0], events[1], events[6], events[7])] == [
        "state",
        "progress",
        "metrics",
        "state",
    ]
    assert events[0].state.state == State.OPERATION_STATE_RUNNING
    assert events[-1].state.state == State.OPERATION_STATE_SUCCEEDED
    assert [p.name for p in events[6].metrics.points] == ["loss"]
    assert events[3].progress.message == "step 2"

    resumed = ops.store.events(name, after=3)
    assert [e.sequence for e in resumed] == list(range(4, 9))
    assert resumed == events[3:]
    assert ops.store.events(name, after=8) == []
    assert [e.sequence for e in ops.store.events(name, after=2, limit=2)] == [3, 4]


def test_cancel_stops_a_handler_that_checks_for_it(ops):
    looping, iterations = threading.Event(), []

    def loop(request, ctx):
        while True:
            looping.set()
            iterations.append(1)
            ctx.check_cancelled()
            time.sleep(0.005)

    ops.runner.register(spec(loop))
    name = ops.start().name
    assert looping.wait(5)
    ops.runner.cancel(name)
    row = ops.wait(name)
    assert row.state == State.OPERATION_STATE_CANCELLED
    error = error_of(row)
    assert type(error) is Cancelled and error.reason == "OPERATION_CANCELLED"
    count = len(iterations)
    time.sleep(0.05)
    assert len(iterations) == count, "the handler kept running after it was cancelled"
    assert ops.runner.cancel(name).state == State.OPERATION_STATE_CANCELLED  # already done


def test_cancel_of_an_operation_not_running_here_ends_it_at_once(ops):
    row = ops.store.create(METHOD, Request(value="orphan"), "")
    assert ops.runner.cancel(row.name).state == State.OPERATION_STATE_CANCELLED


def test_cancel_of_a_finished_operation_changes_nothing(ops):
    ops.runner.register(spec())
    name = ops.wait(ops.start().name).name
    assert ops.runner.cancel(name).state == State.OPERATION_STATE_SUCCEEDED


# --- restarts ----------------------------------------------------------------------------------


def left_running(path: Path, value: str = "resume me") -> str:
    """An operation a crashed service left RUNNING in attempt 1."""
    store = OperationStore(path)
    row = store.create(METHOD, Request(value=value), "req-r")
    store.set_running(row.name, 1)
    store.close()
    return row.name


def test_recover_resumes_a_resumable_operation_with_the_next_attempt(tmp_path):
    name = left_running(tmp_path / "operations.db")
    restarted = Harness(tmp_path / "operations.db")
    try:
        restarted.runner.register(spec(resumable=True))
        assert restarted.runner.recover() == (1, 0)
        row = restarted.wait(name)
        assert row.state == State.OPERATION_STATE_SUCCEEDED
        assert row.attempt == 2
        assert Response.FromString(row.response).value == "RESUME ME"
        messages = [e.state.message for e in restarted.store.events(name, 0) if e.HasField("state")]
        assert "service restarted; resuming (attempt 2)" in messages
    finally:
        restarted.close()


def test_recover_fails_an_operation_that_cannot_resume(tmp_path):
    name = left_running(tmp_path / "operations.db")
    restarted = Harness(tmp_path / "operations.db")
    try:
        restarted.runner.register(spec(resumable=False))
        assert restarted.runner.recover() == (0, 1)
        row = restarted.store.get(name)
        assert row.state == State.OPERATION_STATE_FAILED
        error = error_of(row)
        assert type(error) is FailedPrecondition
        assert error.reason == "OPERATION_INTERRUPTED"
        assert "cannot be resumed" in error.message
    finally:
        restarted.close()


def test_recover_fails_an_operation_whose_method_is_gone(tmp_path):
    name = left_running(tmp_path / "operations.db")
    restarted = Harness(tmp_path / "operations.db")
    try:
        assert restarted.runner.recover() == (0, 1)
        error = error_of(restarted.store.get(name))
        assert error.reason == "OPERATION_INTERRUPTED"
        assert "no longer has the method" in error.message
    finally:
        restarted.close()


def test_a_stopped_runner_leaves_its_operation_to_resume_after_a_restart(tmp_path):
    path = tmp_path / "operations.db"
    looping = threading.Event()

    def wait_for_stop(request, ctx):
        while True:
            looping.set()
            ctx.check_cancelled()
            time.sleep(0.005)

    first = Harness(path)
    first.runner.register(spec(wait_for_stop))
    name = first.start("long job").name
    assert looping.wait(5)
    first.close()  # stop(): the handler is interrupted at its next check
    assert first_state(path, name) == (State.OPERATION_STATE_RUNNING, 1)

    restarted = Harness(path)
    try:
        restarted.runner.register(spec())
        assert restarted.runner.recover() == (1, 0)
        row = restarted.wait(name)
        assert (row.state, row.attempt) == (State.OPERATION_STATE_SUCCEEDED, 2)
        assert Response.FromString(row.response).value == "LONG JOB"
    finally:
        restarted.close()


def first_state(path: Path, name: str) -> tuple[int, int]:
    store = OperationStore(path)
    try:
        row = store.get(name)
        return row.state, row.attempt
    finally:
        store.close()


def test_a_pending_operation_resumes_as_its_first_attempt(tmp_path):
    store = OperationStore(tmp_path / "operations.db")
    name = store.create(METHOD, Request(value="queued"), "").name
    store.close()
    restarted = Harness(tmp_path / "operations.db")
    try:
        restarted.runner.register(spec())
        assert restarted.runner.recover() == (1, 0)
        row = restarted.wait(name)
        assert (row.state, row.attempt) == (State.OPERATION_STATE_SUCCEEDED, 1)
    finally:
        restarted.close()


def test_finished_operations_survive_a_reopen_and_are_not_recovered(tmp_path):
    first = Harness(tmp_path / "operations.db")
    first.runner.register(spec())
    name = first.wait(first.start("kept").name).name
    first.close()
    restarted = Harness(tmp_path / "operations.db")
    try:
        restarted.runner.register(spec())
        assert restarted.runner.recover() == (0, 0)
        assert Response.FromString(restarted.store.get(name).response).value == "KEPT"
        assert [r.name for r in restarted.store.list(done=True, offset=0, limit=5)] == [name]
        assert restarted.store.list(done=False, offset=0, limit=5) == []
    finally:
        restarted.close()


def test_a_finished_operation_is_never_overwritten(ops):
    row = ops.store.create(METHOD, Request(value="x"), "")
    assert ops.store.finish(row.name, State.OPERATION_STATE_CANCELLED, message="cancelled")
    assert not ops.store.finish(
        row.name, State.OPERATION_STATE_SUCCEEDED, message="late", response=Response(value="X")
    )
    after = ops.store.get(row.name)
    assert after.state == State.OPERATION_STATE_CANCELLED and after.response is None
    # The final state event came with the finish, once: whoever sees it done sees its last event.
    events = ops.store.events(row.name, 0)
    assert [(e.state.state, e.state.message) for e in events] == [
        (State.OPERATION_STATE_CANCELLED, "cancelled")
    ]


def test_each_service_keeps_its_own_operations(tmp_path):
    from forgeline.settings import Settings

    settings = Settings(home=tmp_path)
    assert settings.operations_db("data") != settings.operations_db("training")
    data = Harness(settings.operations_db("data"))
    data.runner.register(spec())
    try:
        name = data.start().name
        other = Harness(settings.operations_db("training"))
        assert other.runner.recover() == (0, 0)  # another service's start touches nothing here
        other.close()
        assert data.wait(name).state == State.OPERATION_STATE_SUCCEEDED
    finally:
        data.close()


def test_a_waiter_is_woken_by_the_write_itself_not_by_its_timeout(ops):
    row = ops.store.create(METHOD, Request(value="x"), "")

    async def wait_for_finish() -> float:
        seen = ops.store.version
        threading.Timer(
            0.2,
            lambda: ops.store.finish(row.name, State.OPERATION_STATE_CANCELLED, message="stop"),
        ).start()
        started = time.monotonic()
        await ops.store.wait_change(seen, timeout=30)
        return time.monotonic() - started

    waited = asyncio.run(wait_for_finish())
    assert ops.store.get(row.name).done
    assert waited < 10  # woken by the finish (after ~0.2 s), far from the 30 s timeout

    async def already_changed() -> None:
        await ops.store.wait_change(ops.store.version - 1, timeout=30)

    started = time.monotonic()
    asyncio.run(already_changed())  # a version already past the one seen returns at once
    assert time.monotonic() - started < 10
