"""Every pipeline shipped in examples/pipelines/ is valid against the real services it calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.client import Client
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.conftest import REPO, ServiceThread, make_settings

EXAMPLES = sorted((Path(REPO) / "examples" / "pipelines").glob("*.yaml"))


@pytest.fixture(scope="module")
def gateway(data_service, tmp_path_factory, data_root) -> Iterator[Client]:
    pytest.importorskip("torch")
    home = tmp_path_factory.mktemp("examples-home")
    training = ServiceThread("training", make_settings(home / "training", [data_root])).start()
    tuning = ServiceThread("tuning", make_settings(home / "tuning", [data_root])).start()
    compression = ServiceThread(
        "compression", make_settings(home / "compression", [data_root])
    ).start()
    memory = ServiceThread("memory", make_settings(home / "memory", [data_root])).start()
    safety = ServiceThread("safety", make_settings(home / "safety", [data_root])).start()
    serving = ServiceThread("serving", make_settings(home / "serving", [data_root])).start()
    settings = make_settings(
        home / "gateway",
        [data_root],
        addresses={
            "data": data_service.address,
            "training": training.address,
            "tuning": tuning.address,
            "compression": compression.address,
            "memory": memory.address,
            "safety": safety.address,
            "serving": serving.address,
        },
    )
    thread = ServiceThread("gateway", settings).start()
    with Client(thread.address) as client:
        client.wait_ready()
        yield client
    thread.stop()
    serving.stop()
    safety.stop()
    memory.stop()
    compression.stop()
    tuning.stop()
    training.stop()


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {
        "quickstart.yaml",
        "english-minilm-lora.yaml",
        "continual-sentiment.yaml",
        "guarded-sentiment.yaml",
        "presplit-leakage.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_pipeline_is_valid(gateway, path):
    plan = gateway.pipelines.ValidatePipeline(
        pb.ValidatePipelineRequest(pipeline_yaml=path.read_text(encoding="utf-8"))
    )
    assert plan.steps, path
    assert all(step.method.startswith("forgeline.v1.") for step in plan.steps)
