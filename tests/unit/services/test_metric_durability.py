"""A run's metrics are as durable as its checkpoints (issue 18, item 22), shown on the real
recipe in this process (no Ray): the real MetricsSink between rank 0 and a service thread that
drains it with the real MetricsLog into a real SQLite operation store.

- every checkpoint is kept only once the service has stored the metrics of every step it covers
  (a service killed after the checkpoint of step 60 had lost the points of steps 57-60);
- a run resumed from an earlier checkpoint than the last point stored (the service stored the
  points up to step 6, then died before the checkpoint of step 6 was kept) trains those steps
  again, and the operation still ends with exactly one loss point per step.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("torch")

from forgeline.finetune.metrics import (  # noqa: E402
    PLACED,
    MetricsLog,
    MetricsSink,
    wait_until_stored,
)
from forgeline.finetune.recipe import RecipeConfig, run_recipe  # noqa: E402
from forgeline.finetune.sessions import LocalSession  # noqa: E402
from forgeline.operations import OperationContext, OperationStore  # noqa: E402
from forgeline.testing.classifiers import LABELS, base_model, reviews, write_rows  # noqa: E402
from forgeline.v1 import training_service_pb2 as pb  # noqa: E402

STEPS, EVERY = 8, 3  # checkpoints at steps 3 and 6, and the final one at 8


class Killed(Exception):
    """The service's process died: its run's workers die with it."""


class WatchedSession(LocalSession):
    """A LocalSession that notes, at every checkpoint it is asked to keep, which loss steps the
    operation holds; with ``die_at``, the run dies there instead of keeping that checkpoint."""

    def __init__(self, sink, checkpoints: Path, ctx: OperationContext, die_at: int = 0):
        super().__init__(sink, checkpoints)
        self.ctx, self.die_at = ctx, die_at
        self.stored_at: dict[int, list[int]] = {}

    def report(self, metrics, folder, name) -> None:
        if folder:
            step = int(metrics["step"])
            self.stored_at[step] = loss_steps(self.ctx)
            if step == self.die_at:
                raise Killed(step)
        super().report(metrics, folder, name)


def loss_steps(ctx: OperationContext) -> list[int]:
    return [
        p.step
        for e in ctx.events()
        if e.HasField("metrics")
        for p in e.metrics.points
        if p.name == "loss"
    ]


@contextmanager
def service(ctx: OperationContext, sink: MetricsSink):
    """The training service's side of a run: drains ``sink`` into the operation while the run
    goes on, and once more at its end."""
    log, stop = MetricsLog(ctx), threading.Event()

    def drain() -> None:
        while not stop.wait(0.02):
            log.drain(sink)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        thread.join()
    log.drain(sink)


@pytest.fixture
def operation(tmp_path):
    store = OperationStore(tmp_path / "operations.db")
    row = store.create("forgeline.v1.TrainingService/TrainModel", pb.TrainModelRequest(), "")
    yield lambda: OperationContext(store, row.name, threading.Event(), threading.Event())
    store.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    work = tmp_path_factory.mktemp("durability")
    texts, labels = reviews(4)
    return base_model(work / "base"), write_rows(work / "train.parquet", texts, labels)


def config(inputs, tmp_path) -> RecipeConfig:
    model, rows = inputs
    return RecipeConfig(
        model_path=str(model),
        train_path=str(rows),
        labels=LABELS,
        learning_rate=5e-3,
        batch_size=4,
        max_steps=STEPS,
        checkpoint_every=EVERY,
        max_length=32,
        checkpoint_root=str(tmp_path / "checkpoints"),
        output_dir=str(tmp_path / "model"),
    )


def test_a_checkpoint_is_kept_only_once_the_metrics_it_covers_are_stored(
    operation, inputs, tmp_path
):
    ctx, sink = operation(), MetricsSink()
    (tmp_path / "checkpoints").mkdir()
    session = WatchedSession(sink, tmp_path / "checkpoints", ctx)
    with service(ctx, sink):
        run_recipe(config(inputs, tmp_path), session)
    assert sorted(session.stored_at) == [EVERY, 2 * EVERY, STEPS]
    for step, stored in session.stored_at.items():
        assert set(range(1, step + 1)) <= set(stored), (step, stored)
    assert loss_steps(ctx) == list(range(1, STEPS + 1))


def test_a_resumed_run_records_each_step_exactly_once(operation, inputs, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    first = operation()
    sink = MetricsSink()
    with service(first, sink), pytest.raises(Killed):
        run_recipe(config(inputs, tmp_path), WatchedSession(sink, checkpoints, first, die_at=6))
    # Died as it reported the checkpoint of step 6, its points already stored: the restart
    # resumes from the checkpoint of step 3 and trains steps 4-6 again.
    assert loss_steps(first) == list(range(1, 7))
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint_step_000000003"]

    second, sink = operation(), MetricsSink()  # the restarted service's attempt and sink
    with service(second, sink) as log:
        run_recipe(config(inputs, tmp_path), WatchedSession(sink, checkpoints, second))
    assert loss_steps(second) == list(range(1, STEPS + 1))  # no gap, no step twice
    assert log.last["loss"] > 0  # the run's summary still has its newest values
    starts = [
        e.progress.message
        for e in second.events()
        if e.HasField("progress") and e.progress.message.startswith(PLACED)
    ]
    assert starts == [f"{PLACED}: rank 0 on node local; from step 0"] + [
        f"{PLACED}: rank 0 on node local; from step 3"
    ]
    assert (tmp_path / "model" / "forgeline_training.json").exists()


def test_waiting_for_the_metrics_ends_when_the_service_stored_them():
    sink = MetricsSink()
    sink.push(1, {"loss": 1.0})
    sink.push(2, {"loss": 0.5})
    waited = threading.Thread(target=wait_until_stored, args=(sink,), daemon=True)
    waited.start()
    points, count = sink.drain()
    assert [step for step, _ in points] == [1, 2] and count == 2
    sink.mark_stored(1)
    assert waited.is_alive()  # one of the two points is not stored yet
    sink.mark_stored(count)
    waited.join(timeout=30)
    assert not waited.is_alive()
