"""A compression service on a loopback port, sharing the test session's local Ray, with tiny
trained classifiers (a full model and a LoRA adapter) and review datasets in its store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactRecord, Lineage
from forgeline.client import Client
from forgeline.datasets import Dataset
from tests.conftest import ServiceThread, make_settings
from tests.contract.compress_harness import classifier, metadata, reviews
from tests.integration.training.conftest import Workspace


@dataclass
class Models:
    full: ArtifactRecord
    adapter: ArtifactRecord
    train: Dataset
    eval: Dataset


def table(copies: int, offset: int = 0) -> pa.Table:
    texts, labels = reviews(copies, offset)
    return pa.table({"text": texts, "label": labels})


@pytest.fixture(scope="session")
def compression(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    home = tmp_path_factory.mktemp("compression-home")
    root = tmp_path_factory.mktemp("compression-data")
    service = ServiceThread("compression", make_settings(home, [root]))
    service.start()
    yield Workspace(home, service)
    service.stop()


@pytest.fixture(scope="session")
def compressor(compression) -> Iterator[Client]:
    with Client(compression.service.address) as c:
        c.wait_ready()
        yield c


@pytest.fixture(scope="session")
def models(compression, tmp_path_factory) -> Models:
    work = tmp_path_factory.mktemp("compression-models")
    store = compression.store
    full = classifier(work, "full")
    adapter = classifier(work, "lora")
    base = store.commit_dir(
        shutil.copytree(work / "base", work / "base-copy"),
        kind="model",
        name="tiny-base",
        metadata={"format": "hf", "task": "", "model_type": "bert"},
        lineage=Lineage(),
    )
    return Models(
        full=store.commit_dir(
            full, kind="model", name="tiny-full", metadata=metadata(full), lineage=Lineage()
        ),
        adapter=store.commit_dir(
            adapter,
            kind="adapter",
            name="tiny-lora",
            metadata={**metadata(adapter, "peft_adapter"), "base_artifact_id": base.id},
            lineage=Lineage(),
        ),
        train=compression.dataset(table(6), "train"),
        eval=compression.dataset(table(4, offset=50), "eval"),
    )
