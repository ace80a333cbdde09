"""The audit log on real SQLite: append, list and page; idempotent retries by event id; the hash
chain and its documented canonical form; tampering done with a second sqlite3 connection (an
edited field, a removed middle or last entry, a swapped pair, a consistent rewrite) caught by
verify; and appends from two threads and from two log objects on one file (two processes)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from forgeline.errors import InvalidArgument
from forgeline.services.safety.auditlog import AuditLog, Entry, Event, entry_hash


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(tmp_path / "audit.db")
    yield audit
    audit.close()


def events(n: int, kind: str = "model", start: int = 0) -> list[Event]:
    return [
        Event(kind, subject=f"mdl_{i % 3}", actor="test", details={"i": i, "note": "x"})
        for i in range(start, start + n)
    ]


def tamper(log: AuditLog, sql: str, *args) -> None:
    """Edits the log as an intruder would: another connection, straight SQL."""
    db = sqlite3.connect(log.path, isolation_level=None)
    db.execute(sql, args)
    db.close()


def test_append_list_filter_page_and_retry_by_id(log: AuditLog) -> None:
    assert log.head() == (0, "")
    first = log.append(events(5))
    assert [e.sequence for e in first] == [1, 2, 3, 4, 5]
    more = log.append([*events(2, kind="promotion", start=5), first[1].event])
    assert [e.sequence for e in more] == [6, 7, 2]  # the retried event keeps its entry
    assert more[2] == first[1]

    # a retry with the same id returns the same entry, even in one batch or with new content
    again = Event("promotion", id=more[0].event.id, details={"changed": True})
    assert log.append([again, again]) == [more[0], more[0]]

    everything = log.list()
    assert [e.sequence for e in everything] == list(range(1, 8))
    assert everything[:5] == first  # what append returned is what the log holds
    assert log.head() == (7, everything[-1].hash)
    assert [e.sequence for e in log.list(kind="promotion")] == [6, 7]
    assert [e.sequence for e in log.list(subject="mdl_0")] == [1, 4, 7]
    assert [e.sequence for e in log.list(kind="promotion", subject="mdl_2")] == [6]
    assert [e.sequence for e in log.list(offset=2, limit=3)] == [3, 4, 5]
    assert [e.sequence for e in log.list(newest_first=True, limit=2)] == [7, 6]
    assert [e.sequence for e in log.list(newest_first=True, offset=6)] == [1]
    assert log.list(kind="nothing") == []

    # the chain: each entry holds the hash of the one before it
    assert everything[0].previous_hash == ""
    for before, entry in zip(everything, everything[1:], strict=False):
        assert entry.previous_hash == before.hash
        assert entry.hash == entry_hash(entry.sequence, entry.event, entry.previous_hash)
    assert len({e.hash for e in everything}) == 7
    assert log.verify().as_dict() == {
        "ok": True,
        "entries": 7,
        "head_sequence": 7,
        "head_hash": everything[-1].hash,
        "first_bad_sequence": 0,
        "problem": "",
    }


def test_invalid_events_are_refused_naming_the_event_and_nothing_is_appended(
    log: AuditLog,
) -> None:
    log.append(events(1))
    bad = [
        (Event("Model"), "events[1].kind"),
        (Event("model", subject="s" * 513), "events[1].subject"),
        (Event("model", details={"loss": float("nan")}), "events[1].details.loss"),
        (Event("model", details={"a": [1, {"b": {1, 2}}]}), "events[1].details.a[1].b"),
        (Event("model", details={"big": "x" * 70_000}), "events[1].details"),
        (Event("model", id="no spaces"), "events[1].id"),
    ]
    for event, field in bad:
        with pytest.raises(InvalidArgument) as caught:
            log.append([events(1)[0], event])
        assert [v.field for v in caught.value.violations] == [field]
    assert log.head()[0] == 1
    assert log.verify().ok


def test_the_hash_is_the_documented_canonical_form(log: AuditLog) -> None:
    event = Event(
        "fairness_audit",
        subject="mdl_7",
        actor="safety",
        details={"zeta": [1, 2.5, 3.0], "alpha": {"b": None, "a": True}, "name": 'größe "q"\n'},
        id="ev-1",
        time_us=1_700_000_000_123_456,
    )
    # The module docstring's form, written out by hand: keys sorted at every level, no spaces,
    # UTF-8 as is, 3.0 written as 3.
    text = (
        '{"actor":"safety","details":{"alpha":{"a":true,"b":null},"name":"größe \\"q\\"\\n",'
        '"zeta":[1,2.5,3]},"id":"ev-1","kind":"fairness_audit","previous_hash":"",'
        '"sequence":1,"subject":"mdl_7","time_us":1700000000123456}'
    )
    golden = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert entry_hash(1, event, "") == golden
    (entry,) = log.append([event])
    assert entry.hash == golden
    assert entry.event.details["zeta"] == [1, 2.5, 3]

    # the same event as a google.protobuf.Struct returns it (numbers as doubles) hashes the same
    as_doubles = Event(
        event.kind,
        event.subject,
        event.actor,
        {**event.details, "zeta": [1.0, 2.5, 3.0]},
        event.id,
        event.time_us,
    )
    assert entry_hash(1, as_doubles, "") == golden
    assert entry_hash(2, event, "") != golden
    assert entry_hash(1, event, "0" * 64) != golden


@pytest.fixture
def ten(log: AuditLog) -> list[Entry]:
    return log.append(events(10))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"i":6,"note":"y"}'),
        ("kind", "promotion"),
        ("time_us", 1),
        ("actor", "someone else"),
        ("details", "not json"),
    ],
)
def test_an_edited_entry_is_named(log: AuditLog, ten: list[Entry], column: str, value) -> None:
    tamper(log, f"UPDATE entries SET {column} = ? WHERE sequence = 7", value)
    result = log.verify()
    assert not result.ok
    assert result.first_bad_sequence == 7
    assert result.entries == 6
    assert result.problem == "entry 7 was edited: its hash does not match its content"


def test_a_removed_middle_entry_is_named(log: AuditLog, ten: list[Entry]) -> None:
    tamper(log, "DELETE FROM entries WHERE sequence = 7")
    result = log.verify()
    assert (result.ok, result.first_bad_sequence) == (False, 7)
    assert result.problem == "entry 7 is missing (6 is followed by 8)"
    # renumbered to hide the gap, the chain still breaks at the same place
    tamper(log, "UPDATE entries SET sequence = sequence - 1 WHERE sequence > 7")
    result = log.verify()
    assert (result.ok, result.first_bad_sequence) == (False, 7)
    assert "entry 7 does not follow entry 6" in result.problem


def test_removed_last_entries_are_caught_by_the_head_and_the_head_keeps_the_evidence(
    log: AuditLog, ten: list[Entry]
) -> None:
    tamper(log, "DELETE FROM entries WHERE sequence > 8")
    result = log.verify()
    assert (result.ok, result.first_bad_sequence, result.head_sequence) == (False, 9, 8)
    assert result.problem == "the log ends at 8 but its head file records 10: entries were removed"

    # new appends extend the shortened chain, but the head does not follow: the entry it
    # records was replaced
    log.append(events(3, start=10))
    result = log.verify()
    assert (result.ok, result.first_bad_sequence) == (False, 10)
    assert "entry 10 does not match its head file" in result.problem
    assert json.loads(log.head_path.read_text()) == {"sequence": 10, "hash": ten[-1].hash}


def test_a_missing_head_file_is_reported(log: AuditLog, ten: list[Entry]) -> None:
    log.head_path.unlink()
    result = log.verify()
    assert (result.ok, result.first_bad_sequence, result.entries) == (False, 0, 10)
    assert "head file audit.db.head is missing" in result.problem
    log.head_path.write_text("{")
    assert "is unreadable" in log.verify().problem


def test_a_swapped_pair_is_named(log: AuditLog, ten: list[Entry]) -> None:
    for sequence, temporary in ((4, -4), (5, 4), (-4, 5)):
        tamper(log, "UPDATE entries SET sequence = ? WHERE sequence = ?", temporary, sequence)
    result = log.verify()
    assert (result.ok, result.first_bad_sequence, result.entries) == (False, 4, 3)
    assert "entry 4 does not follow entry 3" in result.problem


def test_a_consistent_rewrite_is_caught_only_by_an_expected_head(
    log: AuditLog, ten: list[Entry]
) -> None:
    recorded = log.verify()
    # an intruder rewrites entry 6 on and re-hashes everything after it, head file included
    previous = ten[4].hash
    for entry in ten[5:]:
        forged = replace(entry.event, details={"i": 0, "note": "forged"})
        digest = entry_hash(entry.sequence, forged, previous)
        tamper(
            log,
            "UPDATE entries SET details = ?, previous_hash = ?, hash = ? WHERE sequence = ?",
            json.dumps(forged.details, sort_keys=True, separators=(",", ":")),
            previous,
            digest,
            entry.sequence,
        )
        previous = digest
    log.head_path.write_text(json.dumps({"sequence": 10, "hash": previous}))

    assert log.verify().ok  # consistent on its own
    result = log.verify(recorded.head_sequence, recorded.head_hash)
    assert (result.ok, result.first_bad_sequence, result.entries) == (False, 10, 9)
    assert "entry 10 does not match the expected head" in result.problem
    # an expected head before the rewrite still holds; one past the end is reported
    assert log.verify(5, ten[4].hash).ok
    beyond = log.verify(12, "ab" * 32)
    assert (beyond.ok, beyond.first_bad_sequence) == (False, 11)
    assert "the expected head records 12" in beyond.problem
    with pytest.raises(InvalidArgument):
        log.verify(3)


def test_an_empty_log_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert (result.ok, result.entries, result.head_sequence, result.head_hash) == (True, 0, 0, "")


def test_concurrent_appends_from_threads_and_from_two_logs_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    first, second = AuditLog(path), AuditLog(path)  # as two processes would open it
    appended: list[Entry] = []
    errors: list[BaseException] = []

    def writer(audit: AuditLog, name: str) -> None:
        try:
            for i in range(40):
                batch = [Event("pipeline_run", subject=f"{name}-{i}-{j}") for j in range(i % 3 + 1)]
                appended.extend(audit.append(batch))
        except BaseException as exc:  # surfaced below, with the others
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(audit, f"{n}{k}"))
        for n, audit in (("a", first), ("b", second))
        for k in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = 4 * sum(i % 3 + 1 for i in range(40))
    held = first.list(limit=10_000)
    assert len(held) == len(appended) == expected
    assert [e.sequence for e in held] == list(range(1, expected + 1))
    assert sorted(e.event.id for e in held) == sorted(e.event.id for e in appended)
    # each writer's events keep its order
    for name in ("a0", "a1", "b0", "b1"):
        mine = [e.event.subject for e in held if e.event.subject.startswith(f"{name}-")]
        assert mine == sorted(mine, key=lambda s: tuple(int(p) for p in s.split("-")[1:]))
    for audit in (first, second):
        result = audit.verify()
        assert (result.ok, result.entries) == (True, expected), result.problem
    assert json.loads(first.head_path.read_text())["sequence"] == expected
    first.close()
    second.close()
