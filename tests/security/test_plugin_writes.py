"""A client's plugin config never names a place on the server to write (or read): the mlflow
tracker's client-given ``tracking_uri`` (``sqlite:////anywhere/x.db``) created files wherever the
service could write. Trackers write inside their run's folder, or where the operator configured
(FORGELINE_TRACKER_DESTINATIONS); every plugin config field is audited for paths and URIs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeline.contracts.trackers import TrackerRun
from forgeline.convert import struct
from forgeline.errors import InvalidArgument
from forgeline.registry import KIND_CONTRACTS, PluginRegistry, config_schema
from forgeline.settings import Settings
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb

REGISTRY = PluginRegistry()
OWN_PLUGINS = sorted(
    (kind, entry.name)
    for kind in KIND_CONTRACTS
    for entry in REGISTRY.discover(kind)
    if entry.distribution == "forgeline"
)
# A field whose name says it is a place: a path, a folder, a file, a URL or URI, a store...
PLACE_NAME = re.compile(
    r"(^|_)(paths?|dirs?|directory|folders?|files?|filename|uris?|urls?|location|destination"
    r"|store|storage|endpoint|host|server|database|db)($|_)"
)
# JSON Schema formats pydantic gives paths and URLs (Path, FilePath, DirectoryPath, AnyUrl...).
PLACE_FORMATS = {"path", "file-path", "directory-path", "new-path", "uri", "uri-reference"}


def _places(schema: Any, where: str = "") -> Iterator[str]:
    """Every property of a JSON Schema (nested ones too) that is a path or a URI."""
    if isinstance(schema, dict):
        if schema.get("format") in PLACE_FORMATS:
            yield f"{where} (format {schema['format']})"
        for name, sub in (schema.get("properties") or {}).items():
            if PLACE_NAME.search(name.lower()):
                yield f"{where}.{name}".lstrip(".")
            yield from _places(sub, f"{where}.{name}".lstrip("."))
        for key, sub in schema.items():
            if key != "properties":
                yield from _places(sub, where)
    elif isinstance(schema, list):
        for sub in schema:
            yield from _places(sub, where)


def test_the_audit_covers_every_plugin_kind():
    audited_kinds = {kind for kind, _ in OWN_PLUGINS}
    assert {"trackers", "loaders", "compressors", "cleaners", "finetune"} <= audited_kinds
    assert len(OWN_PLUGINS) >= 40


@pytest.mark.parametrize(("kind", "name"), OWN_PLUGINS, ids=[f"{k}:{n}" for k, n in OWN_PLUGINS])
def test_no_plugin_config_field_is_a_path_or_uri(kind, name):
    """Paths reach a plugin only through the service (resolved inside the roots: a loader's
    source, a compressor's folders, a tracker's run folder); destinations through settings."""
    schema = config_schema(REGISTRY.get(kind, name))
    assert list(_places(schema)) == [], f"{kind}:{name} lets a client name a place"


def test_a_client_given_tracking_uri_is_refused_naming_the_field(tmp_path):
    with pytest.raises(InvalidArgument) as caught:
        REGISTRY.create(
            "trackers", "mlflow", {"tracking_uri": f"sqlite:///{tmp_path}/x.db"}, "trackers[0]"
        )
    assert [v.field for v in caught.value.violations] == ["trackers[0].config.tracking_uri"]


def test_training_refuses_a_tracker_write_destination_from_the_client(training_sandbox, tmp_path):
    client, dataset_id = training_sandbox.client, training_sandbox.dataset_id
    outside = tmp_path / "outside"
    outside.mkdir()
    tracker = common_pb2.PluginSpec(
        name="mlflow", config=struct({"tracking_uri": f"sqlite:///{outside / 'x.db'}"})
    )
    request = pb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=dataset_id),
        model=pb.ModelSource(
            from_config=pb.ModelFromConfig(
                model_type="bert",
                config=struct(
                    {
                        "num_hidden_layers": 1,
                        "hidden_size": 16,
                        "num_attention_heads": 2,
                        "intermediate_size": 32,
                    }
                ),
                vocab_size=100,
            )
        ),
        trackers=[tracker],
        hyper_parameters=common_pb2.HyperParameters(max_steps=1),
    )
    with pytest.raises(InvalidArgument) as caught:
        client.training.TrainModel(request)
    assert "trackers[0].config.tracking_uri" in [v.field for v in caught.value.violations]
    assert list(outside.iterdir()) == []


def run_in(folder: Path, destination: str = "") -> TrackerRun:
    return TrackerRun(
        "operations/train-1", "reviews", folder, {"learning_rate": 0.01}, destination=destination
    )


@pytest.mark.parametrize("name", ["mlflow", "tensorboard", "wandb"])
def test_a_tracker_writes_only_inside_its_run_folder(name, tmp_path, monkeypatch):
    if name == "wandb":
        pytest.importorskip("wandb")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # MLflow's default artifact root is ./mlruns of the process
    tracker = REGISTRY.create("trackers", name, {}, "trackers[0]")
    run = run_in(tmp_path / "run")
    tracker.start(run)
    tracker.log_metrics({"loss": 0.5}, 1)
    tracker.finish("succeeded", {"accuracy": 1.0})
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "run"]
    assert any(p.is_file() for p in run.output_dir.rglob("*"))


def test_the_operator_names_the_mlflow_destination(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("FORGELINE_TRACKER_DESTINATIONS", json.dumps({"mlflow": uri}))
    destination = Settings().tracker_destinations["mlflow"]
    tracker = REGISTRY.create("trackers", "mlflow", {"experiment_name": "shared"}, "trackers[0]")
    run = run_in(tmp_path / "run", destination)
    tracker.start(run)
    tracker.log_metrics({"loss": 0.5}, 1)
    tracker.finish("succeeded", {})
    assert (tmp_path / "ops.db").is_file()
    assert not (run.output_dir / "mlflow.db").exists()

    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name("shared")
    assert experiment is not None
