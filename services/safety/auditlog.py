"""The tamper-evident audit log: an append-only, hash-chained record of pipeline runs, models,
audits, promotion decisions and blocked requests. No gRPC here.

Every entry carries the hash of the entry before it, so editing, removing, inserting or
reordering any entry breaks the chain at that point, and ``AuditLog.verify`` names the first
entry where it breaks. Removing the *last* entries, or appending entries by writing to the
database, leaves a chain that is still consistent: the head file (``<log>.head``, JSON
{"sequence", "hash"} of the newest entry, replaced atomically inside every append's
transaction) is what catches that, because the log must end exactly where it says. The head
file only moves from the entry it records, so entries written to the database behind the log's
back stay evidence: later appends do not cover them.

What a writer of both the database and the head file does (a log rewritten consistently from
some entry on, or forged entries appended with the head file moved along) is caught only by a
head recorded elsewhere earlier (``verify(expected_sequence, expected_hash)``; ``forgeline
audit verify --expect-head SEQ:HASH``; every run report records the head after its run): keep
such heads somewhere the log's host cannot write. Entries after the newest such head are only
as trustworthy as that host.

The canonical form (to re-verify an exported log independently)
--------------------------------------------------------------
Entry n's ``hash`` is the lowercase hex SHA-256 of the UTF-8 bytes of one JSON object with
exactly these eight members::

    {"actor": str, "details": object, "id": str, "kind": str, "previous_hash": str,
     "sequence": int, "subject": str, "time_us": int}

- ``sequence``: n (1, 2, 3... with no gaps); ``previous_hash``: entry n-1's hash ("" for n=1).
- ``time_us``: the event's time in whole microseconds since the Unix epoch (UTC).
- ``id``, ``kind``, ``subject``, ``actor``, ``details``: the event's fields as sent.
- Written as Python's ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False, allow_nan=False)`` writes it: members sorted by key at every level, no
  whitespace, non-ASCII characters as themselves (only '"', '\\' and control characters are
  escaped, the latter as \\n, \\t... or \\u00xx).
- Numbers: a number that is integral and within +-2**53 is written as an integer (3.0 -> 3),
  any other as Python's shortest round-trip repr (0.1, 1e-07). So details that went through a
  google.protobuf.Struct (where every number is a double) hash the same. NaN and infinities
  are refused.

In Python, given an exported entry with its time converted to microseconds::

    def normal(v):
        if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
            return int(v)
        if isinstance(v, dict):
            return {k: normal(x) for k, x in v.items()}
        return [normal(x) for x in v] if isinstance(v, list) else v

    body = {"sequence": n, "previous_hash": prev, "id": id, "kind": kind, "subject": subject,
            "actor": actor, "time_us": time_us, "details": normal(details)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == hash

Storage: one SQLite database (WAL, synchronous=FULL: an acknowledged entry survives a power
loss, because the sender's outbox forgets it once appended). Appends run in ``BEGIN IMMEDIATE``
transactions that read the tail inside the transaction, so threads and processes sharing the
file extend one chain; the head file is written before the transaction commits, so a crash
between the two leaves a head one append ahead of the log, which verify reports as removed
entries (a false alarm an operator can tell from the senders' records, never a silent gap).
A row that no longer holds what the log wrote (text that is not JSON, a number where text
belongs) is DataLoss when read; verify reports it as an edited entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeline.audit import canonical_json, check_event, now_us
from forgeline.errors import DataLoss, ForgelineError, InvalidArgument, Unavailable
from forgeline.logging import get_logger

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    sequence INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    details TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind);
CREATE INDEX IF NOT EXISTS entries_subject ON entries (subject);
"""
_COLUMNS = "sequence, event_id, kind, subject, actor, time_us, details, previous_hash, hash"
_IN_CHUNK = 500  # ids per "IN (...)" lookup, well under SQLite's variable limit


@dataclass(frozen=True)
class Event:
    """Something worth auditing. An empty ``id`` becomes a new random one; ``time_us`` 0 (in
    microseconds since the epoch) becomes now. Checked when appended (``check``)."""

    kind: str  # "pipeline_run", "model", "fairness_audit", "promotion", "blocked_request"
    subject: str = ""  # what it is about: a run id, an artifact id, a deployment
    actor: str = ""  # who recorded it: a service, a user
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    id: str = ""
    time_us: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", uuid.uuid4().hex)
        if not self.time_us:
            object.__setattr__(self, "time_us", now_us())

    def check(self, field: str = "event") -> str:
        """InvalidArgument naming ``field``'s member ("events[3].kind") unless the log accepts
        this event; its details as canonical JSON otherwise."""
        return check_event(
            id=self.id,
            kind=self.kind,
            subject=self.subject,
            actor=self.actor,
            details=self.details,
            time_us=self.time_us,
            field=field,
        )


@dataclass(frozen=True)
class Entry:
    """An event as the log holds it: its place in the chain and the hashes that bind it."""

    sequence: int
    event: Event
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    """What verify found. ``entries``: how many entries passed before the first problem (all of
    them when ok). ``head_sequence``/``head_hash``: the log's newest entry, to record and
    verify against later. ``first_bad_sequence``: the first entry that is missing, edited or
    out of place (0 when ok, or when the problem is the head file itself)."""

    ok: bool
    entries: int
    head_sequence: int
    head_hash: str
    first_bad_sequence: int = 0
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def entry_hash(sequence: int, event: Event, previous_hash: str) -> str:
    """Hex SHA-256 of the entry's canonical form (see the module docstring)."""
    body = {
        "sequence": sequence,
        "previous_hash": previous_hash,
        "id": event.id,
        "kind": event.kind,
        "subject": event.subject,
        "actor": event.actor,
        "time_us": event.time_us,
        "details": event.details,
    }
    return hashlib.sha256(canonical_json(body, "entry").encode("utf-8")).hexdigest()


class AuditLog:
    """The log in one SQLite file, safe for many threads (one connection and a lock) and for
    several processes opening the same file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, events: Sequence[Event]) -> list[Entry]:
        """Appends the events in one transaction and returns their entries in the events' order.
        An event whose id is already in the log (or earlier in ``events``) is not appended
        again: the entry it got is returned, whatever the content now, so a sender may retry.
        Nothing is appended when any event is invalid (InvalidArgument names it)."""
        details = [event.check(f"events[{i}]") for i, event in enumerate(events)]
        if not events:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            recorded, moved = None, False
            try:
                known = self._entries_by_id({event.id for event in events})
                tail = sequence, previous = self._tail(self._db)
                out, rows = [], []
                for event, text in zip(events, details, strict=True):
                    entry = known.get(event.id)
                    if entry is None:
                        stored = Event(
                            event.kind,
                            event.subject,
                            event.actor,
                            json.loads(text),
                            event.id,
                            event.time_us,
                        )
                        sequence += 1
                        entry = Entry(
                            sequence, stored, previous, entry_hash(sequence, stored, previous)
                        )
                        known[event.id], previous = entry, entry.hash
                        rows.append(_row(entry, text))
                    out.append(entry)
                self._db.executemany(
                    f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                if rows:
                    recorded, _ = self._read_head()
                    moved = self._advance_head(recorded, tail, (sequence, previous))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                if moved:
                    self._restore_head(recorded)
                raise
        return out

    def list(
        self,
        kind: str = "",
        subject: str = "",
        offset: int = 0,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Entry]:
        """Entries in sequence order (or newest first), optionally of one kind and/or subject:
        ``limit`` of them after skipping ``offset``."""
        if offset < 0:
            raise InvalidArgument.for_field("offset", "must be >= 0")
        if limit < 1:
            raise InvalidArgument.for_field("limit", "must be >= 1")
        where, args = [], []
        for column, value in (("kind", kind), ("subject", subject)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY sequence {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit, offset)).fetchall()
        return [_entry(row) for row in rows]

    def head(self) -> tuple[int, str]:
        """The newest entry's sequence and hash; (0, "") for an empty log."""
        with self._lock:
            return self._tail(self._db)

    def verify(self, expected_sequence: int = 0, expected_hash: str = "") -> Verification:
        """Recomputes the whole chain, streaming it in sequence order from one snapshot, and
        reports the first problem: a missing, edited, inserted or reordered entry; a log that
        does not end exactly at its head file (entries removed, or appended by writing to the
        database); a head file that is missing or does not match its entry; an entry that does
        not match ``expected_sequence``/``expected_hash`` (a head recorded earlier, outside the
        log's host), or a log that ends before it. A log rewritten consistently from some entry
        on, head file included, passes unless the expected head reaches into the rewritten part.
        The result's head is what to record now, to pass as the expected head later."""
        if expected_sequence < 0:
            raise InvalidArgument.for_field("expected_sequence", "must be >= 0")
        if bool(expected_sequence) != bool(expected_hash):
            raise InvalidArgument.for_field(
                "expected_hash", "give expected_sequence and expected_hash together"
            )
        db = _connect(self.path)
        try:
            # Appends write the head file inside their transaction: holding the write lock a
            # moment reads a head file and a tail that belong together.
            db.execute("BEGIN IMMEDIATE")
            recorded, head_problem = self._read_head()
            tail = db.execute(
                "SELECT sequence, hash FROM entries ORDER BY sequence DESC LIMIT 1"
            ).fetchone() or (0, "")
            db.execute("ROLLBACK")
            anchors: dict[int, list[tuple[str, str]]] = {}
            if recorded is not None:
                anchors.setdefault(recorded[0], []).append((recorded[1], "its head file"))
            if expected_sequence:
                anchors.setdefault(expected_sequence, []).append(
                    (expected_hash, "the expected head")
                )
            # The walk reads a snapshot of its own, without the lock, so appends go on; what
            # they add after ``tail`` is not this verify's business.
            walk = _Walk(anchors)
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE sequence <= ? ORDER BY sequence", tail[:1]
            )
            for row in rows:
                if not walk.step(row):
                    break
            rows.close()
        finally:
            db.close()
        last = walk.expected - 1  # the last entry the walk passed
        bad, problem = walk.first_bad, walk.problem
        if not problem:
            bad, problem = self._judge_end(last, recorded, head_problem, anchors)
        checked = min(walk.checked, bad - 1) if bad else walk.checked
        return Verification(not problem, checked, tail[0], str(tail[1]), bad, problem)

    def _judge_end(
        self,
        last: int,
        recorded: tuple[int, str] | None,
        head_problem: str,
        anchors: dict[int, list[tuple[str, str]]],
    ) -> tuple[int, str]:
        """After an intact chain ending at ``last``: does it end where the heads say?"""
        if head_problem:
            return 0, head_problem
        if recorded is None and last:
            return 0, (
                f"the head file {self.head_path.name} is missing: removing the newest entries "
                "could not be detected"
            )
        beyond = [(s, source) for s in sorted(anchors) if s > last for _, source in anchors[s]]
        if beyond:
            sequence, source = beyond[-1]
            return last + 1, (
                f"the log ends at {last} but {source} records {sequence}: entries were removed"
            )
        if recorded is not None and recorded[0] < last:
            return recorded[0] + 1, (
                f"the log holds {last} entries but its head file records {recorded[0]}: "
                f"entries {recorded[0] + 1} to {last} were not appended by the log "
                "(written to the database directly)"
            )
        return 0, ""

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _tail(db: sqlite3.Connection) -> tuple[int, str]:
        row = db.execute("SELECT sequence, hash FROM entries ORDER BY sequence DESC LIMIT 1")
        sequence, digest = row.fetchone() or (0, "")
        if not isinstance(digest, str):
            raise _corrupt(sequence, "hash")
        return sequence, digest

    def _entries_by_id(self, ids: Iterable[str]) -> dict[str, Entry]:
        ids, found = sorted(ids), {}
        for start in range(0, len(ids), _IN_CHUNK):
            part = ids[start : start + _IN_CHUNK]
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE event_id IN ({','.join('?' * len(part))})",
                part,
            ):
                entry = _entry(row)
                found[entry.event.id] = entry
        return found

    def _advance_head(
        self, recorded: tuple[int, str] | None, tail: tuple[int, str], new: tuple[int, str]
    ) -> bool:
        """Inside an append's transaction: points the head file at ``new`` when it records
        (``recorded``) the tail the append extended, or the log was empty with no head file;
        whether it moved. Otherwise the file stays as it is: it is the evidence verify reports
        (entries removed, or written to the database behind the log's back), and these entries
        must not cover it up."""
        if recorded != (tail if tail[0] else None):
            log.warning(
                "audit_head_kept",
                reason=f"the head file records {recorded}, the log ended at {tail[0]}",
                log=str(self.path),
            )
            return False
        try:
            head = json.dumps({"sequence": new[0], "hash": new[1]}) + "\n"
            _write_atomically(self.head_path, head)
        except OSError as exc:
            raise Unavailable(
                f"the audit log's head file {self.head_path.name} cannot be written "
                f"({exc.strerror or exc}): nothing was appended",
                reason="AUDIT_HEAD_NOT_WRITTEN",
            ) from exc
        return True

    def _restore_head(self, recorded: tuple[int, str] | None) -> None:
        """Puts back the head file an append replaced before its commit failed."""
        try:
            if recorded is None:
                self.head_path.unlink(missing_ok=True)
            else:
                head = json.dumps({"sequence": recorded[0], "hash": recorded[1]}) + "\n"
                _write_atomically(self.head_path, head)
        except OSError as exc:
            log.error("audit_head_not_restored", error=str(exc), log=str(self.path))

    def _read_head(self) -> tuple[tuple[int, str] | None, str]:
        """The head file's (sequence, hash); None when there is none, with why when there is
        one that cannot be read."""
        try:
            raw = json.loads(self.head_path.read_text())
            return (int(raw["sequence"]), str(raw["hash"])), ""
        except FileNotFoundError:
            return None, ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"the head file {self.head_path.name} is unreadable ({exc})"


class _Walk:
    """Checks entries one at a time in sequence order; remembers the first problem."""

    def __init__(self, anchors: dict[int, list[tuple[str, str]]]) -> None:
        self.anchors = anchors
        self.expected, self.previous = 1, ""
        self.checked, self.first_bad, self.problem = 0, 0, ""

    def step(self, row: tuple) -> bool:
        """False (with the problem recorded) when ``row`` breaks the log."""
        sequence, stored_previous, stored_hash = row[0], row[7], row[8]
        n = self.expected
        if sequence > n:
            after = (
                f"{n - 1} is followed by {sequence}" if n > 1 else f"the log starts at {sequence}"
            )
            return self._fail(n, f"entry {n} is missing ({after})")
        if sequence < n:
            return self._fail(sequence, f"entry {sequence} is out of place (expected {n})")
        if stored_previous != self.previous:
            return self._fail(
                n,
                f"entry {n} does not follow entry {n - 1}: its previous hash does not match "
                "(an entry was removed, inserted or reordered)"
                if n > 1
                else "entry 1 does not start the chain: its previous hash is not empty",
            )
        try:
            content_ok = entry_hash(n, _entry(row).event, stored_previous) == stored_hash
        except (ForgelineError, ValueError, TypeError):  # details no longer valid JSON
            content_ok = False
        if not content_ok:
            return self._fail(n, f"entry {n} was edited: its hash does not match its content")
        for recorded, source in self.anchors.get(n, ()):
            if recorded != stored_hash:
                return self._fail(
                    n,
                    f"entry {n} does not match {source} ({recorded[:16]}... recorded, "
                    f"{stored_hash[:16]}... found): the log was rewritten from there or before",
                )
        self.expected, self.previous = n + 1, stored_hash
        self.checked += 1
        return True

    def _fail(self, sequence: int, problem: str) -> bool:
        self.first_bad, self.problem = sequence, problem
        return False


def _connect(path: Path) -> sqlite3.Connection:
    # timeout: how long a writer waits for another process's transaction to end
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


def _row(entry: Entry, details: str) -> tuple:
    e = entry.event
    return (
        entry.sequence,
        e.id,
        e.kind,
        e.subject,
        e.actor,
        e.time_us,
        details,
        entry.previous_hash,
        entry.hash,
    )


def _entry(row: tuple) -> Entry:
    """The entry a row holds; DataLoss naming the entry and the column when a column no longer
    holds what the log wrote there."""
    sequence, event_id, kind, subject, actor, time_us, details, previous_hash, digest = row
    texts = {
        "event_id": event_id,
        "kind": kind,
        "subject": subject,
        "actor": actor,
        "details": details,
        "previous_hash": previous_hash,
        "hash": digest,
    }
    for column, value in texts.items():
        if not isinstance(value, str):
            raise _corrupt(sequence, column)
    if not isinstance(time_us, int) or time_us <= 0:
        raise _corrupt(sequence, "time_us")
    try:
        parsed = json.loads(details)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _corrupt(sequence, "details")
    event = Event(kind, subject, actor, parsed, event_id, time_us)
    return Entry(sequence, event, previous_hash, digest)


def _corrupt(sequence: int, column: str) -> DataLoss:
    return DataLoss(
        f"audit log entry {sequence} is corrupt: its {column} is not what the log wrote "
        "(run VerifyAuditLog)",
        reason="AUDIT_ENTRY_CORRUPT",
        metadata={"sequence": str(sequence), "column": column},
    )


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a torn one, also after a power loss."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)
