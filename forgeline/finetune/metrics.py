"""How a run's metric points travel from its rank 0 worker to the operation's event log.

Rank 0 pushes each point into a ``MetricsSink`` (a named Ray actor on the head); the service
drains it every fraction of a second into the operation's events (``MetricsLog``) and then marks
the drained points stored. Two rules make the metrics exactly as durable as the checkpoints:

- a checkpoint waits for its metrics: before rank 0 reports one, ``wait_until_stored`` returns
  only once the service has stored every point pushed so far (a service that died stores
  nothing more, so its run keeps no checkpoint ahead of its metrics);
- a step is recorded once: a run resumed from a checkpoint trains again the steps after it,
  and ``MetricsLog`` drops each (metric, step) the operation already holds.

So a run that resumes from checkpoint C after its service stored the points of steps 1..P
(P >= C, by the first rule) records each of steps 1..N exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forgeline.operations import OperationContext

# The progress message each start of a run's worker group sends: "workers placed: rank 0 on node
# <Ray node id>, rank 1 on node <id>; from step <the checkpoint's step, 0 for a fresh start>".
PLACED = "workers placed"

Point = tuple[int, dict[str, float]]  # (optimizer step, {metric name: value})


class MetricsSink:
    """A named Ray actor rank 0 pushes metric points into; the service drains it while the run
    goes on (Ray Train V2 keeps only metrics reported together with a checkpoint). It counts
    the points pushed and the points the service says it stored, so a checkpoint can wait for
    its metrics. In a process without Ray the same object serves both ends directly, from two
    threads (hence the lock; an actor runs one call at a time anyway)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._pushed = self._stored = 0
        self._placing: dict[int, tuple[str, int]] = {}
        self._placements: list[tuple[list[str], int]] = []

    def push(self, step: int, metrics: dict[str, float]) -> None:
        with self._lock:
            self._points.append((step, metrics))
            self._pushed += 1

    def placed(self, rank: int, world: int, node_id: str, step: int = 0) -> None:
        """Each worker says which Ray node it runs on, and from which step its group starts,
        when its group (re)starts."""
        with self._lock:
            self._placing[rank] = (node_id, step)
            if len(self._placing) == world:
                nodes = [self._placing[r][0] for r in range(world)]
                self._placements.append((nodes, self._placing[0][1]))
                self._placing = {}

    def drain(self) -> tuple[list[Point], int]:
        """The points pushed since the last drain, and how many points were pushed in all:
        the count to give ``mark_stored`` once they are stored."""
        with self._lock:
            points, self._points = self._points, []
            return points, self._pushed

    def mark_stored(self, count: int) -> None:
        """The service has stored the first ``count`` points pushed."""
        with self._lock:
            self._stored = max(self._stored, count)

    def counts(self) -> tuple[int, int]:
        """(points pushed, points stored)."""
        with self._lock:
            return self._pushed, self._stored

    def drain_placements(self) -> list[tuple[list[str], int]]:
        """Each started worker group's node ids by rank, and the step it started from."""
        with self._lock:
            placements, self._placements = self._placements, []
            return placements


class ActorSink:
    """A MetricsSink actor behind MetricsSink's own methods: ``push``, ``placed`` and
    ``mark_stored`` are sent without waiting; the others wait for their answer. One caller's
    calls run in the order it made them (a Ray actor with one thread), so ``counts`` counts
    every point the caller pushed before it."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def push(self, step: int, metrics: dict[str, float]) -> None:
        self.handle.push.remote(step, metrics)

    def placed(self, rank: int, world: int, node_id: str, step: int = 0) -> None:
        self.handle.placed.remote(rank, world, node_id, step)

    def drain(self) -> tuple[list[Point], int]:
        return self._ask("drain")

    def mark_stored(self, count: int) -> None:
        self.handle.mark_stored.remote(count)

    def counts(self) -> tuple[int, int]:
        return self._ask("counts")

    def drain_placements(self) -> list[tuple[list[str], int]]:
        return self._ask("drain_placements")

    def _ask(self, method: str) -> Any:
        import ray

        return ray.get(getattr(self.handle, method).remote())


def actor_sink(name: str) -> ActorSink | None:
    """The MetricsSink actor called ``name`` ("namespace/name" or a bare name); None for ""."""
    if not name:
        return None
    import ray

    namespace, _, actor = name.rpartition("/")
    return ActorSink(ray.get_actor(actor, namespace=namespace or None))


def wait_until_stored(sink: MetricsSink | ActorSink, poll_s: float = 0.02) -> None:
    """Returns once the service has stored every point pushed to ``sink`` so far. Rank 0 calls
    it before it reports a checkpoint. A dead sink (its service died) raises instead, so the
    run keeps no checkpoint whose metrics may be lost; a service that is alive drains within
    a fraction of a second."""
    pushed, stored = sink.counts()
    while stored < pushed:
        time.sleep(poll_s)
        stored = sink.counts()[1]


class MetricsLog:
    """The service's end of a sink: writes drained points into the operation's event log, each
    (metric, step) once. The operation's earlier attempts' points are read at the start, so the
    steps a resumed run trains again are not recorded twice; the latest values and progress
    are kept for the caller."""

    def __init__(
        self,
        ctx: OperationContext,
        on_point: Callable[[dict[str, float], int], None] | None = None,
    ) -> None:
        self.ctx, self.on_point = ctx, on_point
        self.recorded = set(recorded_points(ctx.events()))
        self.last: dict[str, float] = {}
        self.progress = 0.0

    def drain(self, sink: MetricsSink | ActorSink) -> None:
        """Stores what ``sink`` holds (placements as progress messages, points as metrics),
        then marks the points stored so a checkpoint waiting for them may go on."""
        for nodes, step in sink.drain_placements():
            ranks = ", ".join(f"rank {rank} on node {node}" for rank, node in enumerate(nodes))
            self.ctx.progress(self.progress, f"{PLACED}: {ranks}; from step {step}", check=False)
        points, count = sink.drain()
        for step, values in points:
            self.write(step, values)
        sink.mark_stored(count)

    def write(self, step: int, values: dict[str, float]) -> None:
        values = dict(values)
        progress = values.pop("progress", None)
        self.last.update(values)  # the newest values, recorded or not, for the run's summary
        new = {k: v for k, v in values.items() if (k, step) not in self.recorded}
        if not new:
            return  # a step an earlier attempt (or worker group) recorded
        self.ctx.metrics(new, step=step)
        self.recorded.update((k, step) for k in new)
        if self.on_point is not None:
            self.on_point(new, step)
        if progress is not None:
            self.progress = progress
            self.ctx.progress(progress, f"step {step}", check=False)


def recorded_points(events: Iterator[Any]) -> Iterator[tuple[str, int]]:
    """(metric name, step) of every metric point in ``events``."""
    for event in events:
        if event.HasField("metrics"):
            for point in event.metrics.points:
                yield point.name, point.step
