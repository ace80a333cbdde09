"""Tiny trained classifiers (a full model and a LoRA adapter) and review datasets in the store of
the compression service (fixture ``compression``, tests/fixtures.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from forgeline.artifacts import ArtifactRecord, Lineage
from forgeline.datasets import Dataset
from forgeline.testing.classifiers import classifier, metadata
from tests.fixtures import reviews


@dataclass
class Models:
    full: ArtifactRecord
    adapter: ArtifactRecord
    train: Dataset
    eval: Dataset


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
        train=compression.dataset(reviews(6), "train"),
        eval=compression.dataset(reviews(4, offset=50), "eval"),
    )
