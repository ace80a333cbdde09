"""MLflow: a run's params, metric history, final metrics and status in an MLflow tracking store.

By default the store is a SQLite database in the run's own folder (``mlflow.db``, artifacts in
``mlartifacts/`` beside it): no server and no network. ``mlflow ui --backend-store-uri
sqlite:///<output_dir>/mlflow.db`` shows it. A shared store (a tracking server, a database) is
the operator's choice, ``FORGELINE_TRACKER_DESTINATIONS='{"mlflow": "http://mlflow:5000"}'``,
which arrives as ``TrackerRun.destination``: a client's config names no place to write (a
client-given ``sqlite:////anywhere/x.db`` created files wherever the service could write), so
the config has no ``tracking_uri`` and a request that sets one is refused naming the field.
(MLflow 3 refuses the old ``./mlruns`` file store unless MLFLOW_ALLOW_FILE_STORE is set.)

Every call names its MLflow run id through an ``MlflowClient``, never the fluent API's global
active run, so several runs tracked at once in one process (one per training thread) never mix.
The final metrics are logged as ``summary/<name>`` so they do not add points to the histories.
"""

from __future__ import annotations

import json
import posixpath
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.trackers import Tracker, TrackerRun
from forgeline.errors import FailedPrecondition

RUN_ID_TAG = "forgeline.run_id"
STATUS_TAG = "forgeline.status"
SUMMARY_PREFIX = "summary/"
_RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
# MLflow's limits (mlflow.utils.validation); a longer key or value fails the whole batch.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
# MLflow accepts letters, digits, "_", "-", ".", " ", "/" (and ":" except on Windows) in names.
_BAD_KEY_CHARS = re.compile(r"[^\w.\-/ ]")
# Opening a store that is new runs its schema migrations; two threads doing that on one shared
# database at once can collide, and so can two creating the same experiment.
_OPEN_LOCK = threading.Lock()


class MlflowTracker(Tracker):
    """Logs params, metric history and final status to an MLflow run (local SQLite by default)."""

    name = "mlflow"

    class Config(PluginConfig):
        experiment_name: str = Field(
            "forgeline",
            min_length=1,
            max_length=500,
            description="Experiment the run is filed under; created when missing.",
        )

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self._client: Any = None
        self._mlflow_run_id = ""
        self._last_step = 0
        self._local = False

    def start(self, run: TrackerRun) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri, artifacts = run.destination, None
        self._local = not uri
        if self._local:
            folder = run.output_dir.resolve()
            folder.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            # Without it, MLflow puts a SQLite store's artifacts in ./mlruns of the process.
            artifacts = (folder / "mlartifacts").as_uri()
        with _OPEN_LOCK:
            self._client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment_id(artifacts)
        logged: Mapping[str, str] = {}
        previous = self._previous_run(experiment_id, run.run_id)
        if previous is not None:  # the service resumed this run after a restart: continue it
            self._mlflow_run_id = previous.info.run_id
            logged = previous.data.params
            self._client.update_run(self._mlflow_run_id, status="RUNNING")
        else:
            created = self._client.create_run(
                experiment_id, run_name=run.name, tags={RUN_ID_TAG: run.run_id}
            )
            self._mlflow_run_id = created.info.run_id
        params = [Param(k, v) for k, v in mlflow_params(run.params).items() if k not in logged]
        for batch in batches(params, PARAMS_PER_BATCH):
            self._client.log_batch(self._mlflow_run_id, params=batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._log(metrics, step)
        self._last_step = max(self._last_step, step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        try:
            self._log({SUMMARY_PREFIX + k: v for k, v in summary.items()}, self._last_step)
            self._client.set_tag(self._mlflow_run_id, STATUS_TAG, status)
        finally:
            self._client.set_terminated(self._mlflow_run_id, _RUN_STATUS.get(status, "FAILED"))
            if self._local:
                self._close_store()

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(mlflow_key(k), float(v), now, step) for k, v in metrics.items()]
        for batch in batches(points, METRICS_PER_BATCH):
            self._client.log_batch(self._mlflow_run_id, metrics=batch)

    def _experiment_id(self, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        name = self.config.experiment_name
        for _ in range(2):
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage != "active":
                    raise FailedPrecondition(
                        f"MLflow experiment {name!r} is deleted in {self._client.tracking_uri}: "
                        "restore it or choose another experiment_name",
                        reason="TRACKER_EXPERIMENT_DELETED",
                        metadata={"plugin": self.name, "experiment": name},
                    )
                return found.experiment_id
            try:
                return self._client.create_experiment(name, artifact_location=artifact_location)
            except MlflowException:  # another process created it in between: look it up again
                continue
        raise FailedPrecondition(
            f"could not create or find MLflow experiment {name!r} in {self._client.tracking_uri}",
            reason="TRACKER_EXPERIMENT_UNAVAILABLE",
            metadata={"plugin": self.name, "experiment": name},
        )

    def _previous_run(self, experiment_id: str, run_id: str) -> Any:
        if "'" in run_id or "\\" in run_id:  # not expressible in a filter string; start afresh
            return None
        found = self._client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1
        )
        return found[0] if found else None

    def _close_store(self) -> None:
        # MLflow caches one store (with its SQLAlchemy pool) per URI; a per-run SQLite file would
        # otherwise stay open for as long as the service lives.
        store = getattr(getattr(self._client, "_tracking_client", None), "store", None)
        engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose()


def mlflow_key(key: str) -> str:
    """``key`` as a name MLflow accepts: other characters become "_", at most 250 characters,
    and no "/" that would make it a non-normalised path."""
    clean = _BAD_KEY_CHARS.sub("_", key)[:MAX_KEY_LENGTH]
    if clean.startswith("/") or posixpath.normpath(clean) != clean:
        clean = clean.replace("/", "_")
    return clean if clean not in ("", ".", "..") else f"_{clean}"


def mlflow_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow strings: scalars as str(), the rest as JSON, cut to MLflow's limit."""
    out = {}
    for key, value in params.items():
        text = value if isinstance(value, str) else _text(value)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
        out[mlflow_key(key)] = text
    return out


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
