"""TensorBoard: a run's metrics as scalars, its params as text and HParams, in event files.

Written with tensorboardX (protobuf and numpy only, no TensorFlow or tensorboard needed to write);
``tensorboard --logdir <output_dir>`` shows them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.trackers import Tracker, TrackerRun

# The HParams plugin's session end states (tensorboard.plugins.hparams.api_pb2.Status); it has
# none for a cancelled run.
_END_STATUS = {
    "succeeded": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "cancelled": "STATUS_UNKNOWN",
}
SUMMARY_PREFIX = "summary/"


class TensorBoardTracker(Tracker):
    """Writes metrics as TensorBoard scalars and params as text and HParams in the run folder."""

    name = "tensorboard"

    class Config(PluginConfig):
        flush_secs: int = Field(
            10,
            ge=1,
            le=3600,
            description="Seconds between writes to disk: how far a live TensorBoard may lag.",
        )
        max_queue: int = Field(
            100, ge=1, le=100_000, description="Events held in memory before they are written."
        )

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self._writer: Any = None
        self._hparams: dict[str, bool | int | float | str] = {}
        self._last_step = 0

    def start(self, run: TrackerRun) -> None:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        run.output_dir.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(
            logdir=str(run.output_dir),
            flush_secs=self.config.flush_secs,
            max_queue=self.config.max_queue,
        )
        self._hparams = {k: hparam_value(v) for k, v in run.params.items() if v is not None}
        self._writer.add_text("params", params_markdown(run), global_step=0)
        _, session_start, _ = hparams(self._hparams, {})
        self._writer.file_writer.add_summary(session_start)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, float(value), global_step=step)
        self._last_step = max(self._last_step, step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        from tensorboardX.proto.api_pb2 import Status
        from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
        from tensorboardX.summary import Summary, SummaryMetadata, hparams

        final = {SUMMARY_PREFIX + key: float(value) for key, value in summary.items()}
        for tag, value in final.items():
            self._writer.add_scalar(tag, value, global_step=self._last_step)
        # tensorboardX's hparams() always reports success; the end record is built here so a
        # failed or cancelled run shows as such in the HParams table.
        experiment, _, _ = hparams(self._hparams, final)
        end = HParamsPluginData(
            session_end_info=SessionEndInfo(
                status=Status.Value(_END_STATUS.get(status, "STATUS_UNKNOWN"))
            ),
            version=0,
        )
        metadata = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(
                plugin_name="hparams", content=end.SerializeToString()
            )
        )
        self._writer.file_writer.add_summary(experiment)
        self._writer.file_writer.add_summary(
            Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=metadata)])
        )
        self._writer.close()


def hparam_value(value: Any) -> bool | int | float | str:
    """A value the HParams plugin can show: numbers, booleans and strings as they are, the rest
    as JSON."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def params_markdown(run: TrackerRun) -> str:
    """The run's id, name and params as a Markdown table (TensorBoard's text tab renders it)."""
    rows = [("run_id", run.run_id), ("name", run.name), *sorted(run.params.items())]
    lines = ["| param | value |", "|---|---|"]
    for key, value in rows:
        text = str(hparam_value(value)).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)
