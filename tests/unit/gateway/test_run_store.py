"""The gateway's run store keeps each step's request as sent, and opens files written before it
did: the old rows read as an empty request, and nothing they held is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from forgeline.gateway import runs as R

OLD_STEPS = """
CREATE TABLE steps (
  run TEXT NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL,
  operation TEXT NOT NULL DEFAULT '', address TEXT NOT NULL DEFAULT '',
  cached INTEGER NOT NULL DEFAULT 0, response TEXT NOT NULL DEFAULT '{}',
  metrics TEXT NOT NULL DEFAULT '{}', gates TEXT NOT NULL DEFAULT '[]',
  message TEXT NOT NULL DEFAULT '', last_event INTEGER NOT NULL DEFAULT 0,
  start_time REAL, end_time REAL, PRIMARY KEY (run, step)
);
INSERT INTO steps(run, step, state, response, metrics)
  VALUES ('operations/old', 'train', 'SUCCEEDED', '{"model": {"id": "m_1"}}', '{"loss": 0.5}');
"""


def test_a_file_from_before_requests_were_kept_opens_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_STEPS)
    store = R.RunStore(path)
    try:
        old = store.steps("operations/old")["train"]
        assert (old.state, old.response, old.metrics, old.request) == (
            R.SUCCEEDED,
            {"model": {"id": "m_1"}},
            {"loss": 0.5},
            {},
        )
        store.update("operations/old", "train", request={"model_id": "m_0", "epochs": 2})
        assert store.steps("operations/old")["train"].request == {"model_id": "m_0", "epochs": 2}
    finally:
        store.close()
    reopened = R.RunStore(path)  # a second open finds the column there and adds nothing
    try:
        assert reopened.steps("operations/old")["train"].request["model_id"] == "m_0"
    finally:
        reopened.close()


def test_a_retry_keeps_the_requests_of_the_steps_it_keeps(tmp_path: Path):
    store = R.RunStore(tmp_path / "runs.db")
    try:
        plan = {"split": {"call": "data.SplitDataset"}, "train": {"call": "training.TrainModel"}}
        store.add_run("operations/a", "p", plan)
        store.update("operations/a", "split", state=R.SUCCEEDED, request={"dataset_id": "ds_1"})
        store.update("operations/a", "train", state=R.FAILED, request={"model_id": "m"})
        assert store.copy_succeeded("operations/a", "operations/b") == 1
        store.add_run("operations/b", "p", plan)  # the steps not kept start PENDING
        kept = store.steps("operations/b")
        assert kept["split"].request == {"dataset_id": "ds_1"}
        assert (kept["train"].state, kept["train"].request) == (R.PENDING, {})
    finally:
        store.close()
