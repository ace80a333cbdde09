"""forgeline.audit.AuditOutbox delivering into a real AuditLog through an in-test send (the
network is the only thing faked): nothing is lost while delivery fails, order is kept, a
closed outbox's events are sent by the next one on its spool, a full spool refuses instead of
dropping, and record() does not wait for a slow send."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from forgeline.audit import AuditOutbox
from forgeline.errors import InvalidArgument, ResourceExhausted, Unavailable
from forgeline.services.safety.auditlog import AuditLog, Event


class Wire:
    """A send() into the log that can be down (raising as a dead service would) or held."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.down = False
        self.refused = 0
        self.gate: threading.Event | None = None  # when set: each send waits for it
        self.entered = threading.Event()

    def __call__(self, events: list[dict]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.down:
            self.refused += 1
            raise Unavailable("safety service unavailable")
        self.log.append([Event(**event) for event in events])


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(tmp_path / "audit.db")
    yield audit
    audit.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_events_recorded_while_delivery_fails_arrive_in_order_once_it_works(
    tmp_path: Path, log: AuditLog
) -> None:
    wire = Wire(log)
    wire.down = True
    outbox = AuditOutbox(tmp_path / "spool.db", wire, actor="gateway", flush_interval=0.02, batch=3)
    try:
        with capture_logs() as logs:
            ids = [
                outbox.record("pipeline_run", f"run-{i}", {"step": i, "score": 0.5})
                for i in range(10)
            ]
            wait_until(lambda: wire.refused >= 2)  # the thread retried, backing off
        assert outbox.pending() == 10
        assert log.head() == (0, "")
        failure = next(e for e in logs if e["event"] == "audit_delivery_failed")
        assert failure["log_level"] == "warning"
        assert "Unavailable: safety service unavailable" in failure["error"]

        wire.down = False
        outbox.flush()
        assert outbox.pending() == 0
        entries = log.list()
        assert [e.event.id for e in entries] == ids  # each once, in the order recorded
        assert [e.event.details for e in entries] == [{"step": i, "score": 0.5} for i in range(10)]
        assert {(e.event.kind, e.event.actor) for e in entries} == {("pipeline_run", "gateway")}
        assert log.verify().ok
        with pytest.raises(InvalidArgument) as caught:  # the log would refuse it: never spooled
            outbox.record("Bad Kind")
        assert caught.value.violations[0].field == "kind"
        assert outbox.pending() == 0
    finally:
        outbox.close()


def test_a_closed_outbox_leaves_its_events_to_the_next_one(tmp_path: Path, log: AuditLog) -> None:
    spool = tmp_path / "spool.db"
    wire = Wire(log)
    wire.down = True
    crashed = AuditOutbox(spool, wire, actor="serving", flush_interval=60)
    ids = [crashed.record("blocked_request", "deployment-a", {"rule": "pii"}) for _ in range(4)]
    recorded_by = time.time_ns() // 1000
    crashed.close(timeout=0.5)
    assert log.head() == (0, "")

    wire.down = False
    reopened = AuditOutbox(spool, wire, actor="serving-2", flush_interval=0.02)
    try:
        assert reopened.pending() == 4
        ids.append(reopened.record("blocked_request", "deployment-b"))
        wait_until(lambda: reopened.pending() == 0)
        entries = log.list()
        assert [e.event.id for e in entries] == ids
        assert [e.event.actor for e in entries] == ["serving"] * 4 + ["serving-2"]
        # each keeps the time it was recorded at, not when it was sent
        assert all(e.event.time_us <= recorded_by for e in entries[:4])
    finally:
        reopened.close()


def test_a_full_spool_refuses_rather_than_drops(tmp_path: Path, log: AuditLog) -> None:
    wire = Wire(log)
    wire.down = True
    outbox = AuditOutbox(
        tmp_path / "spool.db", wire, actor="serving", max_pending=3, flush_interval=60
    )
    try:
        kept = [outbox.record("blocked_request", str(i)) for i in range(3)]
        wait_until(lambda: wire.refused >= 1)  # failed once: the thread now backs off for 30 s
        with pytest.raises(ResourceExhausted) as caught:
            outbox.record("blocked_request", "3")
        assert caught.value.reason == "AUDIT_OUTBOX_FULL"
        assert "3 undelivered events" in caught.value.message
        wire.down = False
        assert outbox.flush() == 3
        kept.append(outbox.record("blocked_request", "3"))  # room again
        outbox.flush()
        assert [e.event.id for e in log.list()] == kept
    finally:
        outbox.close()


def test_record_returns_at_once_while_a_send_is_stuck(tmp_path: Path, log: AuditLog) -> None:
    wire = Wire(log)
    wire.gate = threading.Event()
    outbox = AuditOutbox(tmp_path / "spool.db", wire, actor="serving", flush_interval=0.02)
    try:
        ids = [outbox.record("blocked_request", "first")]
        assert wire.entered.wait(5)  # the thread is inside send(), waiting
        took = []
        for i in range(20):
            started = time.perf_counter()
            ids.append(outbox.record("blocked_request", f"while-stuck-{i}"))
            took.append(time.perf_counter() - started)
        assert max(took) < 0.5, took
        assert outbox.pending() == 21
        wire.gate.set()
        wait_until(lambda: outbox.pending() == 0)
        assert [e.event.id for e in log.list()] == ids
    finally:
        wire.gate.set()
        outbox.close()
