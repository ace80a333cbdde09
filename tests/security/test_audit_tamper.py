"""The audit log against whoever can write its database (issue 18, items 8 and 10).

An entry forged and appended at the tail by writing to the database passed VerifyAuditLog (its
head file said 10 entries, the log held 11). The log must now end exactly where its head file
says, later appends must not cover a forgery up, and the head after every pipeline run is kept
in the run's report, away from the log: a log truncated (head file rewritten along) is caught
by verifying against it, over gRPC and with `forgeline audit verify --expect-head`. A row with
garbage in a column is DATA_LOSS, not INTERNAL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import DataLoss, Unavailable
from forgeline.services.safety.auditlog import AuditLog, Event, entry_hash
from forgeline.v1 import pipeline_service_pb2 as ppb
from forgeline.v1 import pipeline_service_pb2_grpc
from forgeline.v1 import safety_service_pb2 as pb
from tests.conftest import REPO, ServiceThread, make_settings


@pytest.fixture
def safety(tmp_path: Path) -> Iterator[ServiceThread]:
    service = ServiceThread("safety", make_settings(tmp_path, [tmp_path])).start()
    yield service
    service.stop()


@pytest.fixture
def client(safety: ServiceThread) -> Iterator[Client]:
    with Client(safety.address) as c:
        c.wait_ready()
        yield c


def log_path(service: ServiceThread) -> Path:
    return service.settings.home / "services" / "safety" / "audit.db"


def append(client: Client, n: int, start: int = 0) -> list[pb.AuditEntry]:
    events = [
        pb.AuditEvent(kind="promotion", subject=f"run-{i}", actor="test", details=struct({"i": i}))
        for i in range(start, start + n)
    ]
    return list(client.safety.AppendAuditEvents(pb.AppendAuditEventsRequest(events=events)).entries)


def verify(client: Client, head: tuple[int, str] = (0, "")) -> pb.VerifyAuditLogResponse:
    request = pb.VerifyAuditLogRequest(expected_sequence=head[0], expected_hash=head[1])
    return client.safety.VerifyAuditLog(request)


def forge_tail(path: Path) -> None:
    """Appends a well-formed, correctly chained entry with straight SQL, as a database writer
    who knows the canonical form would."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        sequence, previous = db.execute(
            "SELECT sequence, hash FROM entries ORDER BY sequence DESC LIMIT 1"
        ).fetchone()
        event = Event("promotion", subject="run-forged", actor="gateway", details={"passed": 1})
        digest = entry_hash(sequence + 1, event, previous)
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sequence + 1,
                event.id,
                event.kind,
                event.subject,
                event.actor,
                event.time_us,
                '{"passed":1}',
                previous,
                digest,
            ),
        )
    finally:
        db.close()


def test_an_entry_forged_at_the_tail_fails_and_later_appends_do_not_cover_it(client, safety):
    ten = append(client, 10)
    assert verify(client).ok
    forge_tail(log_path(safety))

    forged = verify(client)
    assert (forged.ok, forged.first_bad_sequence, forged.entries) == (False, 11, 10)
    assert forged.head_sequence == 11
    assert "the log holds 11 entries but its head file records 10" in forged.problem

    # The next genuine append chains onto the forgery; the head file stays where it was.
    (genuine,) = append(client, 1, start=10)
    assert genuine.sequence == 12
    still = verify(client)
    assert (still.ok, still.first_bad_sequence) == (False, 11)
    # ...and against a head kept elsewhere, the log up to it is intact: the forgery came after.
    kept = verify(client, (ten[-1].sequence, ten[-1].hash))
    assert (kept.ok, kept.first_bad_sequence) == (False, 11)


def test_a_truncated_log_is_caught_against_the_head_the_run_report_kept(
    data_service, safety, client, tmp_path_factory, data_root
):
    source = data_root / "audit-anchor.csv"
    source.write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(12)))
    settings = make_settings(
        tmp_path_factory.mktemp("audit-gateway"),
        [data_root],
        addresses={"data": data_service.address, "safety": safety.address},
    )
    gateway = ServiceThread("gateway", settings).start()
    try:
        with Client(gateway.address) as g:
            g.wait_ready()
            pipelines = pipeline_service_pb2_grpc.PipelineServiceStub(g.channel)
            text = (
                "apiVersion: forgeline/v1\nkind: Pipeline\nmetadata: {name: anchored}\nsteps:\n"
                f'  - {{name: ingest, call: data.IngestDataset, with: {{source: "{source}"}}}}\n'
            )
            op = pipelines.SubmitPipeline(ppb.SubmitPipelineRequest(pipeline_yaml=text))
            done = g.wait(op, ppb.SubmitPipelineResponse, timeout=300).run
    finally:
        gateway.stop()
    report = json.loads((Path(unquote(urlparse(done.report.uri).path)) / "report.json").read_text())
    anchor = report["audit_head"]
    now = verify(client)
    assert now.ok
    assert (anchor["sequence"], anchor["hash"], anchor["pending"]) == (
        now.head_sequence,
        now.head_hash,
        0,
    )
    assert anchor["expect_head"] == f"{now.head_sequence}:{now.head_hash}"
    ends = client.safety.ListAuditEntries(
        pb.ListAuditEntriesRequest(kind="pipeline_run", subject=done.name)
    ).entries
    assert [e.event.details["state"] for e in ends] == ["RUNNING", "SUCCEEDED"]
    assert ends[-1].sequence <= anchor["sequence"]  # the head covers the run's own events

    # A database writer removes the run's end and moves the head file back along with it:
    # consistent on its own, caught only by the head kept in the report.
    path = log_path(safety)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM entries WHERE sequence >= ?", (ends[-1].sequence,))
    tail = db.execute("SELECT sequence, hash FROM entries ORDER BY sequence DESC").fetchone()
    db.close()
    path.with_name("audit.db.head").write_text(json.dumps({"sequence": tail[0], "hash": tail[1]}))
    assert verify(client).ok
    caught = verify(client, (anchor["sequence"], anchor["hash"]))
    assert (caught.ok, caught.first_bad_sequence) == (False, tail[0] + 1)
    assert f"the expected head records {anchor['sequence']}: entries were removed" in caught.problem

    cli = subprocess.run(
        [sys.executable, "-m", "forgeline", "audit", "verify", "--expect-head"]
        + [anchor["expect_head"]],
        capture_output=True,
        text=True,
        env={**os.environ, "FORGELINE_ADDRESSES": json.dumps({"safety": safety.address})},
        cwd=REPO,
        timeout=120,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "TAMPERED" in cli.stdout and f"head {tail[0]}:{tail[1]}" in cli.stdout


@pytest.mark.parametrize(
    ("column", "garbage"),
    [("details", "garbage"), ("time_us", "not a time"), ("kind", b"\x00\xff"), ("hash", b"\x07")],
)
def test_a_corrupt_row_is_data_loss_and_verify_names_it(client, safety, column, garbage):
    entries = append(client, 3)
    db = sqlite3.connect(log_path(safety), isolation_level=None)
    db.execute(f"UPDATE entries SET {column} = ? WHERE sequence = 2", (garbage,))
    db.close()

    with pytest.raises(DataLoss) as lost:
        client.safety.ListAuditEntries(pb.ListAuditEntriesRequest())
    assert lost.value.code.name == "DATA_LOSS"
    assert f"audit log entry 2 is corrupt: its {column}" in lost.value.message
    retried = pb.AuditEvent(id=entries[1].event.id, kind="promotion")
    with pytest.raises(DataLoss):  # a retry of the corrupt entry's event cannot be answered
        client.safety.AppendAuditEvents(pb.AppendAuditEventsRequest(events=[retried]))
    result = verify(client)
    assert (result.ok, result.first_bad_sequence) == (False, 2)


def test_verifying_while_appending_never_reports_a_false_problem(tmp_path: Path):
    """The head file moves inside each append's transaction and verify reads it with the tail
    under the write lock: a verify between an append's commit and its head never sees a log
    longer (or shorter) than its head file."""
    path = tmp_path / "audit.db"
    writer, reader = AuditLog(path), AuditLog(path)  # as two processes would open it
    done = threading.Event()
    problems: list[str] = []

    def keep_verifying() -> None:
        while not done.is_set():
            result = reader.verify()
            if not result.ok:
                problems.append(result.problem)

    thread = threading.Thread(target=keep_verifying)
    thread.start()
    try:
        for i in range(150):
            writer.append([Event("pipeline_run", subject=f"run-{i}")])
    finally:
        done.set()
        thread.join(60)
        writer.close()
        reader.close()
    assert problems == []
    assert AuditLog(path).verify().entries == 150


def test_an_append_whose_head_cannot_be_written_appends_nothing(tmp_path: Path):
    """No entry enters the log without its head file: an unwritable head is UNAVAILABLE (the
    senders' outboxes keep the events for a retry), not entries the head does not cover."""
    audit = AuditLog(tmp_path / "audit.db")
    try:
        audit.append([Event("promotion", subject="run-1")])
        audit.head_path.with_name("audit.db.head.tmp").mkdir()  # in the way of its new copy
        with pytest.raises(Unavailable, match="head file audit.db.head cannot be written"):
            audit.append([Event("promotion", subject="run-2")])
        assert [e.event.subject for e in audit.list()] == ["run-1"]
    finally:
        audit.close()
