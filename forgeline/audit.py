"""Audit events on their way to the safety service's log: the rules an event must follow, its
canonical JSON, and the outbox through which any other process sends events without losing them.

The safety service keeps the hash-chained log (forgeline.services.safety.auditlog); the gateway
and the serving service reach it over gRPC (SafetyService/AppendAuditEvents). An AuditOutbox
spools each event in a local SQLite file first and delivers it from a background thread, so a
safety service that is down or slow delays events, never loses them and never slows the caller.
Events carry a unique id; the log appends an id once, so a delivery retried after a timeout is
harmless. ``AuditOutbox.head`` delivers what is pending and reads the log's head: a record kept
away from the log's host (run reports keep one) that later verifies catch truncation and rewrites
against.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from forgeline.logging import get_logger

if TYPE_CHECKING:
    from forgeline.client import Client
    from forgeline.settings import Settings

log = get_logger(__name__)

MAX_TEXT_CHARS = 512  # subject and actor
MAX_DETAILS_BYTES = 64 * 1024  # canonical UTF-8 JSON
MAX_DEPTH = 32  # nesting of details
MAX_SAFE_INTEGER = 2**53  # larger integers do not survive a google.protobuf.Struct (a double)
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LAST_MICROSECOND = 253402300800 * 1_000_000  # 10000-01-01: past google.protobuf.Timestamp
_MAX_RETRY_DELAY_S = 30.0


@dataclass(frozen=True)
class AuditHead:
    """The audit log's newest entry as read at one moment (``forgeline audit verify
    --expect-head SEQUENCE:HASH`` checks the log still holds it), and how many of this
    outbox's events were still undelivered then, so not covered by it."""

    sequence: int
    hash: str
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "hash": self.hash,
            "expect_head": f"{self.sequence}:{self.hash}",
            "pending": self.pending,
        }


def now_us() -> int:
    """Microseconds since the epoch: the time unit of audit events."""
    return time.time_ns() // 1000


def canonical_json(value: Any, field: str = "details") -> str:
    """The one JSON text of ``value`` that hashing and storage use: keys sorted, no spaces
    (separators "," and ":"), non-ASCII characters as themselves (UTF-8), and every number that
    is integral and within +-2**53 written as an integer (3.0 -> 3, so a value survives a trip
    through a google.protobuf.Struct unchanged); other numbers as Python's shortest repr.

    Raises InvalidArgument naming the offending path below ``field`` for anything JSON cannot
    hold exactly: NaN or infinity, a non-string key, an integer beyond +-2**53, an object other
    than dict / list / tuple / str / number / bool / None, nesting deeper than 32, text that is
    not valid Unicode.
    """
    text = json.dumps(
        _plain(value, field, 0),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument.for_field(field, "holds text that is not valid Unicode") from None
    return text


def _plain(value: Any, field: str, depth: int) -> Any:
    """``value`` as plain JSON values, numbers normalised; InvalidArgument at the first flaw."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidArgument.for_field(
                field, f"integer {value} is beyond +-2**53; send it as a string"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument.for_field(field, f"{value} is not a JSON number")
        return int(value) if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER else value
    if depth >= MAX_DEPTH:
        raise InvalidArgument.for_field(field, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument.for_field(field, f"key {key!r} is not a string")
            out[key] = _plain(item, f"{field}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidArgument.for_field(field, f"a {type(value).__name__} is not a JSON value")


def check_event(
    *,
    id: str,
    kind: str,
    subject: str,
    actor: str,
    details: Mapping[str, Any],
    time_us: int,
    field: str = "",
) -> str:
    """Checks one audit event against the rules the log enforces and returns its details as
    canonical JSON. Errors name ``field``'s members ("events[2].kind"). Checked before an event
    is spooled too: an event the log would refuse must never sit in an outbox, blocking every
    event behind it."""

    def name(member: str) -> str:
        return f"{field}.{member}" if field else member

    if not isinstance(id, str) or not _ID.fullmatch(id):
        raise InvalidArgument.for_field(
            name("id"), "use 1-128 letters, digits, '.', '_', ':' or '-'"
        )
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidArgument.for_field(
            name("kind"),
            f"{kind!r} is not a kind: use a lowercase letter, then up to 63 lowercase letters, "
            "digits, '_' or '.' (e.g. blocked_request)",
        )
    for member, text in (("subject", subject), ("actor", actor)):
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            raise InvalidArgument.for_field(
                name(member), f"must be text of at most {MAX_TEXT_CHARS} characters"
            )
    if not isinstance(time_us, int) or not 0 < time_us < _LAST_MICROSECOND:
        raise InvalidArgument.for_field(
            name("time_us"), "must be microseconds since the epoch, before the year 10000"
        )
    if not isinstance(details, Mapping):
        raise InvalidArgument.for_field(name("details"), "must be a JSON object")
    text = canonical_json(details, name("details"))
    size = len(text.encode("utf-8"))
    if size > MAX_DETAILS_BYTES:
        raise InvalidArgument.for_field(
            name("details"), f"is {size} bytes as JSON; the limit is {MAX_DETAILS_BYTES}"
        )
    return text


_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    time_us INTEGER NOT NULL
);
"""


class AuditOutbox:
    """Records audit events at once into a local spool and delivers them in order, in batches,
    from a daemon thread, retrying with exponential back-off (capped at 30 s) while delivery
    fails. An event leaves the spool only after ``send`` returned for its batch, so a crash or a
    close with events still pending loses nothing: the next outbox opened on the same spool
    sends them. One outbox per spool file at a time.

    ``send(events)`` delivers one batch (dicts with id, kind, subject, actor, details, time_us)
    and raises on failure; see grpc_sender. A send with a ``close()`` is closed with the outbox;
    one with a ``head()`` (the log's newest sequence and hash) lets ``head`` read the log's head.

    The spool is bounded: with ``max_pending`` events undelivered, record() refuses new ones
    with ResourceExhausted instead of dropping any: an audit trail must not silently lose
    events, so a caller that must act (serving refusing a request) learns that it cannot be
    recorded.
    """

    def __init__(
        self,
        path: Path,
        send: Callable[[list[dict]], None],
        *,
        actor: str,
        flush_interval: float = 0.5,
        batch: int = 256,
        max_pending: int = 100_000,
    ) -> None:
        if batch < 1 or max_pending < 1 or flush_interval <= 0:
            raise InvalidArgument("batch and max_pending must be >= 1, flush_interval > 0")
        self.path = Path(path)
        self.actor = actor
        self._send, self._interval = send, flush_interval
        self._batch, self._max_pending = batch, max_pending
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # record() returns only once it is on disk
        self._db.executescript(_SPOOL_SCHEMA)
        self._db_lock = threading.Lock()  # never held while sending
        self._flush_lock = threading.Lock()  # one delivery at a time keeps the order
        self._pending = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        self._failures = 0  # consecutive failed deliveries: the thread's back-off
        self._closed = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-outbox", daemon=True)
        self._thread.start()

    def record(self, kind: str, subject: str = "", details: Mapping[str, Any] | None = None) -> str:
        """Spools one event (a new id, the current time) durably and returns its id; never
        waits for the network. InvalidArgument for an event the log would refuse;
        ResourceExhausted when ``max_pending`` events are still undelivered."""
        event_id, time_us = uuid.uuid4().hex, now_us()
        text = check_event(
            id=event_id,
            kind=kind,
            subject=subject,
            actor=self.actor,
            details=details or {},
            time_us=time_us,
        )
        with self._db_lock:
            if self._closed:
                raise FailedPrecondition(f"the audit outbox {self.path} is closed")
            if self._pending >= self._max_pending:
                raise ResourceExhausted(
                    f"the audit outbox {self.path} holds {self._pending} undelivered events "
                    f"(max_pending {self._max_pending}): the safety service is not accepting "
                    f"them; refusing to record {kind!r} rather than lose it",
                    reason="AUDIT_OUTBOX_FULL",
                    metadata={"pending": str(self._pending)},
                )
            self._db.execute(
                "INSERT INTO pending (id, kind, subject, actor, details, time_us) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, kind, subject, self.actor, text, time_us),
            )
            self._pending += 1
        self._wake.set()
        return event_id

    def pending(self) -> int:
        """Events recorded and not yet delivered."""
        with self._db_lock:
            return self._pending

    def flush(self, timeout: float | None = None) -> int:
        """Sends pending events oldest first, a batch at a time, until none is left, a send
        fails (logged; the events stay) or ``timeout`` seconds have passed (checked between
        batches: one send is not interrupted). Returns how many were delivered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._flush_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return 0  # another delivery is under way and did not finish in time
        try:
            delivered = 0
            while rows := self._oldest():
                try:
                    self._send([_event_dict(row) for row in rows])
                except Exception as exc:  # whatever failed, the events stay for a retry
                    self._failures += 1
                    log.warning(
                        "audit_delivery_failed",
                        error=f"{type(exc).__name__}: {exc}",
                        pending=self.pending(),
                        retry_in_s=round(self._retry_delay(), 3),
                        spool=str(self.path),
                    )
                    break
                if self._failures:
                    log.info("audit_delivery_resumed", after_failures=self._failures)
                self._failures = 0
                self._forget(rows[-1][0])
                delivered += len(rows)
                if deadline is not None and time.monotonic() >= deadline:
                    break
            return delivered
        finally:
            self._flush_lock.release()

    def head(self, timeout: float = 5.0) -> AuditHead:
        """Delivers the pending events (for up to ``timeout`` seconds), then reads the log's
        head from the safety service: a head that covers every event recorded here before the
        call, unless ``pending`` says some were still undelivered."""
        read = getattr(self._send, "head", None)
        if read is None:
            raise FailedPrecondition(f"the audit outbox {self.path} cannot read the log's head")
        self.flush(timeout=timeout)
        sequence, digest = read()
        return AuditHead(sequence, digest, self.pending())

    def close(self, timeout: float = 5.0) -> None:
        """Makes a last delivery attempt bounded by ``timeout``, then stops the thread and
        closes the spool. Events still pending stay there for the next outbox on this path."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self.flush(timeout=max(deadline - time.monotonic(), 0.0))
        with self._db_lock:
            if not self._closed:
                self._closed = True
                self._db.close()
        close_sender = getattr(self._send, "close", None)
        if close_sender is not None:
            close_sender()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._failures:  # back off; record() does not cut the wait short
                self._stopping.wait(self._retry_delay())
            else:
                self._wake.wait(self._interval)
                self._wake.clear()
            if not self._stopping.is_set():
                self.flush()

    def _retry_delay(self) -> float:
        return min(_MAX_RETRY_DELAY_S, self._interval * 2 ** min(self._failures, 32))

    def _oldest(self) -> list[tuple]:
        with self._db_lock:
            if self._closed:
                return []
            return self._db.execute(
                "SELECT position, id, kind, subject, actor, details, time_us FROM pending "
                "ORDER BY position LIMIT ?",
                (self._batch,),
            ).fetchall()

    def _forget(self, upto: int) -> None:
        """Deletes the delivered events (positions only grow, so a batch is a prefix)."""
        with self._db_lock:
            if self._closed:  # delivered twice at worst: the log appends an id once
                return
            removed = self._db.execute("DELETE FROM pending WHERE position <= ?", (upto,))
            self._pending -= removed.rowcount


def _event_dict(row: tuple) -> dict[str, Any]:
    _, event_id, kind, subject, actor, details, time_us = row
    return {
        "id": event_id,
        "kind": kind,
        "subject": subject,
        "actor": actor,
        "details": json.loads(details),
        "time_us": time_us,
    }


def grpc_sender(client_factory: Callable[[], Client]) -> Callable[[list[dict]], None]:
    """A ``send`` for AuditOutbox that appends each batch through
    SafetyService/AppendAuditEvents (5 s deadline). The client is made on the first send and
    kept (a channel reconnects by itself) until the outbox closes."""
    from forgeline.convert import struct
    from forgeline.v1 import safety_service_pb2 as pb

    client: Client | None = None
    made = threading.Lock()  # the outbox's thread sends while a caller may read the head

    def connected() -> Client:
        nonlocal client
        with made:
            if client is None:
                client = client_factory()
            return client

    def send(events: list[dict]) -> None:
        messages = []
        for event in events:
            message = pb.AuditEvent(
                id=event["id"],
                kind=event["kind"],
                subject=event["subject"],
                actor=event["actor"],
                details=struct(event["details"]),
            )
            message.time.FromMicroseconds(event["time_us"])
            messages.append(message)
        request = pb.AppendAuditEventsRequest(events=messages)
        connected().safety.AppendAuditEvents(request, timeout=5)

    def head() -> tuple[int, str]:
        request = pb.ListAuditEntriesRequest(page_size=1, newest_first=True)
        newest = connected().safety.ListAuditEntries(request, timeout=5).entries
        return (newest[0].sequence, newest[0].hash) if newest else (0, "")

    def close() -> None:
        if client is not None:
            client.close()

    send.head = head  # AuditOutbox.head() reads the log's head through the same channel
    send.close = close  # AuditOutbox.close() closes the channel with the outbox
    return send


def service_outbox(settings: Settings, service: str) -> AuditOutbox:
    """The outbox a service (not the safety service itself) records audit events through: its
    spool in the service's folder, delivered to the safety service at its configured address."""
    from forgeline.client import Client
    from forgeline.service_spec import audit_log_service

    sink = audit_log_service()
    if sink is None:
        raise NotFound(
            "no installed service keeps the audit log (a spec with keeps_audit_log=True)",
            reason="AUDIT_LOG_NOT_FOUND",
        )
    folder = settings.home.expanduser() / "services" / service
    folder.mkdir(parents=True, exist_ok=True)
    return AuditOutbox(
        folder / "audit-outbox.db",
        grpc_sender(lambda: Client(settings.address_for(sink), token=settings.auth_token or None)),
        actor=service,
    )
