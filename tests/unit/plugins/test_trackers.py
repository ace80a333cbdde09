"""The built-in trackers, read back with each tool's own formats: what a person would see in
TensorBoard, MLflow and W&B is what the run logged, at the right steps, with the right status."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from forgeline.contracts.trackers import Tracker, TrackerRun
from forgeline.errors import FailedPrecondition
from forgeline.plugins.trackers.mlflow import (
    MAX_PARAM_VALUE_LENGTH,
    MlflowTracker,
    mlflow_key,
    mlflow_params,
)
from forgeline.plugins.trackers.tensorboard import TensorBoardTracker
from forgeline.plugins.trackers.wandb import WandbTracker, read_run_records

PARAMS = {"learning_rate": 0.001, "epochs": 3, "strategy": "lora", "lora.target_modules": ["q"]}
# Exactly representable in float32 (TensorBoard's scalar type), so comparisons are exact.
LOSSES = {1: 1.0, 2: 0.5, 3: 0.25, 4: 0.125}


def run_in(folder: Path, run_id: str = "operations/train-1", **params) -> TrackerRun:
    return TrackerRun(run_id, "reviews-lora", folder, {**PARAMS, **params})


def log_losses(tracker: Tracker, losses: dict[int, float] = LOSSES) -> None:
    for step, loss in losses.items():
        tracker.log_metrics({"loss": loss}, step)


def test_listing_trackers_imports_none_of_their_libraries():
    code = (
        "import sys\n"
        "from forgeline.registry import PluginRegistry\n"
        "assert len(PluginRegistry().load_kind('trackers')) >= 3\n"
        "print([m for m in ('tensorboardX', 'mlflow', 'wandb') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- TensorBoard -------------------------------------------------------------------------------


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tensorboard_events(folder: Path) -> list:
    """Every Event in the folder's event files, reading the TFRecord framing (length, CRCs) the
    way TensorBoard does."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
            body = data[pos + 12 : pos + 12 + length]
            (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
            assert header_crc == _masked_crc(header) and body_crc == _masked_crc(body), path
            events.append(Event.FromString(body))
            pos += 16 + length
    return events


def scalars(events: list) -> dict[str, list[tuple[int, float]]]:
    found = defaultdict(list)
    for event in events:
        for value in event.summary.value:
            if value.HasField("simple_value"):
                found[value.tag].append((event.step, value.simple_value))
    return dict(found)


def hparams_records(events: list) -> dict[str, object]:
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    found = {}
    for event in events:
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                found[data.WhichOneof("data")] = getattr(data, data.WhichOneof("data"))
    return found


def test_tensorboard_scalars_are_read_back_at_their_steps(tmp_path):
    tracker = TensorBoardTracker()
    tracker.start(run_in(tmp_path))
    log_losses(tracker)
    tracker.log_metrics({"eval/accuracy": 0.75}, 4)
    tracker.finish("succeeded", {"eval/accuracy": 0.75})

    found = scalars(tensorboard_events(tmp_path))
    assert found["loss"] == sorted(LOSSES.items())
    assert found["eval/accuracy"] == [(4, 0.75)]
    assert found["summary/eval/accuracy"] == [(4, 0.75)]


def test_tensorboard_params_are_text_and_hparams_with_the_final_status(tmp_path):
    from tensorboardX.proto.api_pb2 import Status

    tracker = TensorBoardTracker()
    tracker.start(run_in(tmp_path / "failed"))
    log_losses(tracker, {1: 1.0})
    tracker.finish("failed", {"loss": 1.0})
    events = tensorboard_events(tmp_path / "failed")

    texts = [
        v.tensor.string_val[0].decode()
        for e in events
        for v in e.summary.value
        if v.tag == "params/text_summary"
    ]
    assert len(texts) == 1
    assert "| learning_rate | 0.001 |" in texts[0] and "| strategy | lora |" in texts[0]
    assert "operations/train-1" in texts[0]
    records = hparams_records(events)
    start = records["session_start_info"].hparams
    assert start["learning_rate"].number_value == 0.001
    assert start["strategy"].string_value == "lora"
    assert start["lora.target_modules"].string_value == '["q"]'
    assert [m.name.tag for m in records["experiment"].metric_infos] == ["summary/loss"]
    assert records["session_end_info"].status == Status.Value("STATUS_FAILURE")


# --- MLflow ------------------------------------------------------------------------------------


def mlflow_client(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder.resolve() / 'mlflow.db'}")


def only_run(client, experiment: str = "forgeline"):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, runs
    return runs[0]


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_mlflow_run_has_params_history_and_status_in_the_run_folder(tmp_path):
    tracker = MlflowTracker()
    tracker.start(run_in(tmp_path, notes="n" * 10_000, **{"odd key: é|*": 1}))
    log_losses(tracker)
    tracker.log_metrics({"eval/accuracy": 0.8}, 4)
    tracker.finish("succeeded", {"eval/accuracy": 0.8, "loss": 0.125})

    client = mlflow_client(tmp_path)
    run = only_run(client)
    assert run.info.status == "FINISHED" and run.info.run_name == "reviews-lora"
    assert run.data.tags["forgeline.run_id"] == "operations/train-1"
    assert run.data.tags["forgeline.status"] == "succeeded"
    params = run.data.params
    assert params["learning_rate"] == "0.001" and params["epochs"] == "3"
    assert params["lora.target_modules"] == '["q"]'
    assert params["odd key_ é__"] == "1"
    assert len(params["notes"]) == MAX_PARAM_VALUE_LENGTH and params["notes"].endswith("...")
    assert history(client, run.info.run_id, "loss") == sorted(LOSSES.items())  # no summary point
    assert history(client, run.info.run_id, "summary/loss") == [(4, 0.125)]
    assert run.data.metrics["summary/eval/accuracy"] == 0.8
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()


@pytest.mark.parametrize(("status", "expected"), [("failed", "FAILED"), ("cancelled", "KILLED")])
def test_mlflow_run_that_did_not_succeed_says_so(tmp_path, status, expected):
    tracker = MlflowTracker()
    tracker.start(run_in(tmp_path))
    log_losses(tracker, {1: 1.0})
    tracker.finish(status, {})
    run = only_run(mlflow_client(tmp_path))
    assert run.info.status == expected
    assert run.data.tags["forgeline.status"] == status


def test_mlflow_runs_tracked_at_once_in_one_store_do_not_mix(tmp_path):
    """Two runs in the operator's shared store (FORGELINE_TRACKER_DESTINATIONS)."""
    shared_uri = f"sqlite:///{tmp_path / 'shared.db'}"
    losses = {"a": {s: 1.0 / s for s in range(1, 21)}, "b": {s: 100.0 + s for s in range(1, 21)}}
    ready, errors = threading.Barrier(2), []

    def train(name: str) -> None:
        try:
            tracker = MlflowTracker(MlflowTracker.Config(experiment_name="ab"))
            ready.wait()
            run = run_in(tmp_path / name, f"operations/{name}")
            tracker.start(dataclasses.replace(run, destination=shared_uri))
            log_losses(tracker, losses[name])
            tracker.finish("succeeded" if name == "a" else "failed", {})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(name,)) for name in losses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=shared_uri)
    experiment = client.get_experiment_by_name("ab")
    runs = {
        r.data.tags["forgeline.run_id"]: r for r in client.search_runs([experiment.experiment_id])
    }
    assert set(runs) == {"operations/a", "operations/b"}
    for name, expected in losses.items():
        run = runs[f"operations/{name}"]
        assert history(client, run.info.run_id, "loss") == sorted(expected.items())
    assert runs["operations/a"].info.status == "FINISHED"
    assert runs["operations/b"].info.status == "FAILED"


def test_mlflow_interleaved_trackers_in_one_thread_keep_their_runs(tmp_path):
    first, second = MlflowTracker(), MlflowTracker()
    first.start(run_in(tmp_path / "a", "operations/a"))
    second.start(run_in(tmp_path / "b", "operations/b"))
    for step in (1, 2, 3):
        first.log_metrics({"loss": float(step)}, step)
        second.log_metrics({"loss": -float(step)}, step)
    first.finish("succeeded", {})
    second.finish("cancelled", {})
    for name, sign, status in (("a", 1, "FINISHED"), ("b", -1, "KILLED")):
        client = mlflow_client(tmp_path / name)
        run = only_run(client)
        assert history(client, run.info.run_id, "loss") == [(s, sign * s) for s in (1, 2, 3)]
        assert run.info.status == status


def test_mlflow_resumed_run_continues_the_same_mlflow_run(tmp_path):
    before = MlflowTracker()
    before.start(run_in(tmp_path))
    log_losses(before, {1: 1.0, 2: 0.5})  # the service stops here; a restart resumes the run
    after = MlflowTracker()
    after.start(run_in(tmp_path))
    log_losses(after, {3: 0.25})
    after.finish("succeeded", {})
    client = mlflow_client(tmp_path)
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert history(client, run.info.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 0.25)]


def test_mlflow_names_and_values_are_made_acceptable():
    assert mlflow_key("eval/accuracy") == "eval/accuracy"
    assert mlflow_key("acc@1 (top)") == "acc_1 _top_"
    assert mlflow_key("/abs//path/") == "_abs__path_"
    assert mlflow_key("..") == "_.."
    assert len(mlflow_key("k" * 400)) == 250
    assert mlflow_params({"a": None, "b": True, "c": {"x": [1]}, "d": "s"}) == {
        "a": "None",
        "b": "True",
        "c": '{"x": [1]}',
        "d": "s",
    }


# --- Weights & Biases --------------------------------------------------------------------------


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


def wandb_run(folder: Path) -> dict:
    """History rows, final summary, config and exit code of the one W&B run under folder."""
    files = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    rows, summary, config, exit_code = [], {}, {}, None
    for record in read_run_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({_key(u): json.loads(u.value_json) for u in updates})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {"rows": rows, "summary": summary, "config": config, "exit_code": exit_code}


def test_wandb_offline_run_is_written_under_the_output_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    tracker = WandbTracker()
    tracker.start(run_in(tmp_path / "out"))
    log_losses(tracker)
    tracker.log_metrics({"eval/accuracy": 0.5}, 4)  # the same step as the last loss
    tracker.finish("succeeded", {"loss": 0.1, "eval/accuracy": 0.75})

    run = wandb_run(tmp_path / "out")
    assert [(r["_step"], r["loss"]) for r in run["rows"]] == sorted(LOSSES.items())
    assert run["rows"][-1]["eval/accuracy"] == 0.5
    # the final summary wins over the last logged step of the same name
    assert run["summary"]["loss"] == 0.1 and run["summary"]["eval/accuracy"] == 0.75
    assert run["summary"]["forgeline.status"] == "succeeded"
    assert run["config"]["forgeline.run_id"] == "operations/train-1"
    assert run["config"]["learning_rate"] == 0.001
    assert run["exit_code"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_wandb_runs_at_once_in_one_process_do_not_mix(tmp_path):
    pytest.importorskip("wandb")
    first, second = WandbTracker(), WandbTracker()
    first.start(run_in(tmp_path / "a", "operations/a"))
    second.start(run_in(tmp_path / "b", "operations/b"))
    for step in (1, 2, 3):
        first.log_metrics({"loss": float(step)}, step)
        second.log_metrics({"loss": -float(step)}, step)
    second.finish("failed", {})
    first.finish("succeeded", {})
    a, b = wandb_run(tmp_path / "a"), wandb_run(tmp_path / "b")
    assert [r["loss"] for r in a["rows"]] == [1, 2, 3]
    assert [r["loss"] for r in b["rows"]] == [-1, -2, -3]
    assert (a["config"]["forgeline.run_id"], b["config"]["forgeline.run_id"]) == (
        "operations/a",
        "operations/b",
    )
    assert (a["exit_code"], b["exit_code"]) == (0, 1)


def test_wandb_missing_is_a_failed_precondition_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(FailedPrecondition) as caught:
        WandbTracker().start(run_in(tmp_path))
    assert "pip install wandb" in caught.value.message
    assert caught.value.reason == "TRACKER_LIBRARY_MISSING"
