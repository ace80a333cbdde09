"""The trackers contract: a Tracker mirrors a training run's metrics into an experiment tracker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeline.contracts.base import Plugin


@dataclass(frozen=True)
class TrackerRun:
    """One training run as a tracker sees it."""

    run_id: str  # the operation name, unique per run
    name: str  # a readable name (the output model's name)
    # A folder only this run's tracker writes into (file stores: TensorBoard logs, MLflow runs).
    output_dir: Path
    # The hyper-parameters and strategy config, flattened to "a.b" keys.
    params: Mapping[str, Any] = field(default_factory=dict)
    # Where to write instead of output_dir (a tracking server's URI, say): only the operator
    # names it (FORGELINE_TRACKER_DESTINATIONS), never a client's config. Empty: output_dir.
    destination: str = ""


class Tracker(Plugin, ABC):
    """Mirrors a run's metrics into an experiment tracker. The service calls ``start`` once,
    ``log_metrics`` for every metric point in step order, then ``finish`` exactly once (also
    when the run fails or is cancelled). A tracker must never fail the training: the service
    logs and drops a tracker that raises."""

    kind = "trackers"

    @abstractmethod
    def start(self, run: TrackerRun) -> None: ...

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    @abstractmethod
    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        """``status``: "succeeded", "failed" or "cancelled"; ``summary``: the final metrics."""
