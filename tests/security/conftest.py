"""Fixtures the security tests share: a real training service to attack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from forgeline.artifacts import ArtifactStore
from forgeline.client import Client
from tests.conftest import make_settings, serving, store_reviews


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
    dataset_id = store_reviews(home, 10)
    store = ArtifactStore(home / "artifacts")
    try:
        with serving("training", make_settings(home, [root])) as client:
            yield TrainingSandbox(client, dataset_id, root, store)
    finally:
        store.close()
