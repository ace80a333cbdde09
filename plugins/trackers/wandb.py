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

import logging
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.trackers import Tracker, TrackerRun
from forgeline.errors import FailedPrecondition

RUN_ID_KEY = "forgeline.run_id"
STATUS_KEY = "forgeline.status"
FLUSH_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


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
            if self.config.mode == "offline":
                _wait_for_exit_record(Path(self._run.settings.sync_file))


def read_run_records(run_file: Path) -> list:
    """The complete records of a W&B transaction log (``run-*.wandb``), in order.

    The file is a 7-byte header, then LevelDB-log chunks in 32 KiB blocks, each with a 7-byte
    header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last). A chunk still being written
    at the end of the file is left out.
    """
    from wandb.proto.wandb_internal_pb2 import Record

    data = run_file.read_bytes()
    if data[:4] != b":W&B":
        return []
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # padding to the end of the block
            pos += left
            continue
        if pos + 7 + length > len(data):
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(Record.FromString(pending))
            pending = b""
    return records


def _wait_for_exit_record(run_file: Path) -> None:
    """Return once the run's exit record is on disk.

    ``Run.finish`` returns when wandb-core has taken the exit record, but the core closes and
    flushes the run's file later, on its own: a run folder read (or digested into an artifact)
    right after ``finish`` may still miss its last rows.
    """
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    while time.monotonic() < deadline:
        if run_file.exists() and any(
            r.WhichOneof("record_type") == "exit" for r in read_run_records(run_file)
        ):
            return
        time.sleep(0.05)
    log.warning("W&B run file %s has no exit record %.0f s after finish", run_file, FLUSH_TIMEOUT_S)
