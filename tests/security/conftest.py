"""Fixtures the security tests share: a real training service to attack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.datasets import DatasetRepository
from tests.conftest import ServiceThread, make_settings


@dataclass(frozen=True)
class TrainingSandbox:
    client: Client
    dataset_id: str  # a small labelled dataset in the service's store
    root: Path  # the service's data root (client-given paths resolve inside it)
    store: ArtifactStore  # the service's artifact store


@pytest.fixture(scope="module")
def training_sandbox(tmp_path_factory) -> Iterator[TrainingSandbox]:
    """A training service on loopback without Ray: requests the planner refuses are answered
    before any capacity check, so no Ray (and no worker) ever starts."""
    home, root = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("root")
    store = ArtifactStore(home / "artifacts")
    texts = [f"good food {i}" for i in range(10)] + [f"cold soup {i}" for i in range(10)]
    table = pa.table({"text": texts, "label": ["pos"] * 10 + ["neg"] * 10})
    dataset = DatasetRepository(store).save(
        table, name="reviews", text_column="text", label_column="label", lineage=Lineage()
    )
    service = ServiceThread("training", make_settings(home, [root])).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            yield TrainingSandbox(client, dataset.id, root, store)
    finally:
        service.stop()
