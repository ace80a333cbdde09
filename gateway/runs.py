"""Where pipeline runs keep their steps and the step cache: SQLite beside the gateway's operations.

A run itself is an operation of the gateway (state, progress, events and the final response live
in the kernel's operation store). This store adds what a run needs to survive the gateway's
restart without running a finished step twice: per step its state, the service operation it
started (so a restarted gateway re-attaches to it), its response, metrics and gate verdicts; and
the cache of successful steps by key.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  name TEXT PRIMARY KEY,
  pipeline TEXT NOT NULL,
  plan TEXT NOT NULL DEFAULT '{}',
  create_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
  run TEXT NOT NULL,
  step TEXT NOT NULL,
  state TEXT NOT NULL,
  operation TEXT NOT NULL DEFAULT '',
  address TEXT NOT NULL DEFAULT '',
  cached INTEGER NOT NULL DEFAULT 0,
  response TEXT NOT NULL DEFAULT '{}',
  metrics TEXT NOT NULL DEFAULT '{}',
  gates TEXT NOT NULL DEFAULT '[]',
  message TEXT NOT NULL DEFAULT '',
  last_event INTEGER NOT NULL DEFAULT 0,
  start_time REAL,
  end_time REAL,
  request TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (run, step)
);
CREATE TABLE IF NOT EXISTS reports (
  run TEXT PRIMARY KEY,
  artifact TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY,
  run TEXT NOT NULL,
  step TEXT NOT NULL,
  response TEXT NOT NULL,
  metrics TEXT NOT NULL,
  create_time REAL NOT NULL
);
"""

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, SKIPPED = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "SKIPPED",
)
FINISHED = {SUCCEEDED, FAILED, CANCELLED, SKIPPED}


@dataclass
class StepRow:
    run: str
    step: str
    state: str = PENDING
    operation: str = ""
    address: str = ""
    cached: bool = False
    response: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    last_event: int = 0
    start_time: float | None = None
    end_time: float | None = None
    request: dict[str, Any] = field(default_factory=dict)


# Columns added to a table after a release, with their definition: a store opened on an older
# file gains them (the rows it holds get the default).
ADDED_COLUMNS = {"steps": {"request": "TEXT NOT NULL DEFAULT '{}'"}}


class RunStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for table, columns in ADDED_COLUMNS.items():
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, definition in columns.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # --- runs -----------------------------------------------------------------------------------
    def add_run(self, name: str, pipeline: str, plan: dict[str, dict[str, Any]]) -> None:
        """Records a run, its plan (per step: call, method, depends_on) and its steps as
        PENDING; steps already there (a resumed run, or kept by a retry) stay as they are."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO runs(name, pipeline, plan, create_time) "
                    "VALUES (?, ?, ?, ?)",
                    (name, pipeline, json.dumps(plan), time.time()),
                )
                for step in plan:
                    self._db.execute(
                        "INSERT OR IGNORE INTO steps(run, step, state) VALUES (?, ?, ?)",
                        (name, step, PENDING),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def plan(self, name: str) -> dict[str, dict[str, Any]]:
        row = self._db.execute("SELECT plan FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(name)
        return json.loads(row["plan"])

    def pipeline_of(self, name: str) -> str:
        row = self._db.execute("SELECT pipeline FROM runs WHERE name = ?", (name,)).fetchone()
        return row["pipeline"] if row else ""

    def copy_succeeded(self, source: str, target: str) -> int:
        """A retry keeps what succeeded: the source run's succeeded steps, as they were."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO steps(run, step, state, operation, address, cached, "
                "response, metrics, gates, message, last_event, start_time, end_time, request) "
                "SELECT ?, step, state, operation, address, cached, response, metrics, gates, "
                "'kept from ' || run, last_event, start_time, end_time, request FROM steps "
                "WHERE run = ? AND state = ?",
                (target, source, SUCCEEDED),
            )
            return cursor.rowcount

    def runs(self, pipeline: str, offset: int, limit: int) -> list[str]:
        """Run names, newest first."""
        sql = "SELECT name FROM runs {} ORDER BY create_time DESC, name LIMIT ? OFFSET ?"
        where, args = ("WHERE pipeline = ?", (pipeline,)) if pipeline else ("", ())
        rows = self._db.execute(sql.format(where), (*args, limit, offset)).fetchall()
        return [r["name"] for r in rows]

    def has_run(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE name = ?", (name,)).fetchone() is not None

    # --- steps ----------------------------------------------------------------------------------
    def steps(self, run: str) -> dict[str, StepRow]:
        rows = self._db.execute("SELECT * FROM steps WHERE run = ?", (run,)).fetchall()
        return {r["step"]: _step(r) for r in rows}

    def update(self, run: str, step: str, **values: Any) -> None:
        """Sets columns of one step (dicts and lists stored as JSON)."""
        encoded = {
            k: json.dumps(v) if isinstance(v, dict | list) else int(v) if isinstance(v, bool) else v
            for k, v in values.items()
        }
        assignments = ", ".join(f"{k} = ?" for k in encoded)
        self._write(
            f"UPDATE steps SET {assignments} WHERE run = ? AND step = ?",
            (*encoded.values(), run, step),
        )

    def merge_metrics(self, run: str, step: str, metrics: dict[str, float]) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT metrics FROM steps WHERE run = ? AND step = ?", (run, step)
            ).fetchone()
            merged = {**json.loads(row["metrics"]), **metrics} if row else dict(metrics)
            self._db.execute(
                "UPDATE steps SET metrics = ? WHERE run = ? AND step = ?",
                (json.dumps(merged), run, step),
            )

    # --- reports --------------------------------------------------------------------------------
    def set_report(self, name: str, report: dict[str, Any]) -> None:
        """The run's report artifact (proto JSON); the latest write wins."""
        self._write(
            "INSERT OR REPLACE INTO reports(run, artifact) VALUES (?, ?)",
            (name, json.dumps(report)),
        )

    def report(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT artifact FROM reports WHERE run = ?", (name,)).fetchone()
        return json.loads(row["artifact"]) if row else None

    # --- cache ----------------------------------------------------------------------------------
    def cached(self, key: str) -> tuple[dict[str, Any], dict[str, float], str, str] | None:
        row = self._db.execute("SELECT * FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return json.loads(row["response"]), json.loads(row["metrics"]), row["run"], row["step"]

    def remember(
        self, key: str, run: str, step: str, response: dict[str, Any], metrics: dict[str, float]
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO cache(key, run, step, response, metrics, create_time) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, run, step, json.dumps(response), json.dumps(metrics), time.time()),
        )

    def forget(self, key: str) -> None:
        self._write("DELETE FROM cache WHERE key = ?", (key,))


def _step(row: sqlite3.Row) -> StepRow:
    return StepRow(
        run=row["run"],
        step=row["step"],
        state=row["state"],
        operation=row["operation"],
        address=row["address"],
        cached=bool(row["cached"]),
        response=json.loads(row["response"]),
        metrics=json.loads(row["metrics"]),
        gates=json.loads(row["gates"]),
        message=row["message"],
        last_event=row["last_event"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        request=json.loads(row["request"]),
    )
