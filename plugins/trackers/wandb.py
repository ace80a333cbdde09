"""Weights & Biases: a run's config, metric history, summary and exit status in a W&B run.

Offline by default: the run is written under ``<output_dir>/wandb/`` and ``wandb sync`` uploads it
later; "online" streams it to W&B (needs WANDB_API_KEY), "disabled" writes nothing. wandb is an
optional dependency (``forgeline[trackers]``), imported only when a run starts.

Each run is its own ``wandb.Run`` (``reinit="create_new"``) and every call goes through that
object, never the global ``wandb.log``, so several runs tracked at once in one process never mix.
W&B does not capture the process's console or sample its system metrics: in a service those
belong to every run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from forgeline.errors import FailedPrecondition
from forgeline.registry import PluginConfig, Tracker, TrackerRun

RUN_ID_KEY = "forgeline.run_id"
STATUS_KEY = "forgeline.status"


class WandbTracker(Tracker):
    """Logs config, metrics and summary to a Weights & Biases run (offline files by default)."""

    name = "wandb"

    class Config(PluginConfig):
        project: str = Field(
            "forgeline", min_length=1, max_length=128, description="W&B project of the run."
        )
        mode: Literal["offline", "online", "disabled"] = Field(
            "offline",
            description="offline: write the run under the run folder for a later `wandb sync`; "
            "online: stream it to W&B (needs WANDB_API_KEY); disabled: log nothing.",
        )
        entity: str | None = Field(
            None,
            min_length=1,
            description="W&B user or team owning the project; default: the API key's entity.",
        )

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self._run: Any = None

    def start(self, run: TrackerRun) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise FailedPrecondition(
                "the wandb tracker needs the wandb package, which is not installed: "
                "pip install wandb (or forgeline[trackers])",
                reason="TRACKER_LIBRARY_MISSING",
                metadata={"plugin": self.name, "package": "wandb"},
            ) from exc
        run.output_dir.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=self.config.project,
            entity=self.config.entity,
            name=run.name,
            dir=str(run.output_dir),
            mode=self.config.mode,
            config={**run.params, RUN_ID_KEY: run.run_id},
            reinit="create_new",
            settings=wandb.Settings(
                console="off",
                silent=True,
                disable_git=True,
                save_code=False,
                x_disable_stats=True,
            ),
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log({key: float(value) for key, value in metrics.items()}, step=step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        try:
            # W&B holds the last step's row until a later step or finish, and writing it then
            # would overwrite the summary values of the same names: commit it first.
            self._run.log({}, commit=True)
            self._run.summary.update({key: float(value) for key, value in summary.items()})
            self._run.summary[STATUS_KEY] = status
        finally:
            self._run.finish(exit_code=0 if status == "succeeded" else 1)
