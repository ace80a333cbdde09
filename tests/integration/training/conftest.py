"""A training service on a loopback port, sharing the test session's local Ray, and helpers to
put datasets into its artifact store (the way the data service would)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings

TINY_BERT = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 128,
}
TINY_GPT2 = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 128}
GOOD = ["good food", "great taste", "fresh and tasty", "fast delivery", "lovely soup"]
BAD = ["cold food", "awful taste", "stale and salty", "slow delivery", "bland soup"]


def reviews(copies: int) -> pa.Table:
    texts = [f"{t} {i}" for i in range(copies) for t in GOOD + BAD]
    labels = [("pos" if t.split()[0] in {g.split()[0] for g in GOOD} else "neg") for t in texts]
    return pa.table({"text": texts, "label": labels})


def spec(name: str, **config) -> common_pb2.PluginSpec:
    return common_pb2.PluginSpec(name=name, config=struct(config))


def tiny_bert(vocab: int = 120) -> pb.ModelSource:
    return pb.ModelSource(
        from_config=pb.ModelFromConfig(
            model_type="bert", config=struct(TINY_BERT), vocab_size=vocab
        )
    )


class Workspace:
    def __init__(self, home: Path, service: ServiceThread) -> None:
        self.home, self.service = home, service
        self.store = ArtifactStore(home / "artifacts")
        self.datasets = DatasetRepository(self.store)

    def dataset(self, table: pa.Table, name: str, label: str = "label") -> Dataset:
        return self.datasets.save(
            table, name=name, text_column="text", label_column=label, lineage=Lineage()
        )


@pytest.fixture(scope="session")
def training(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    home = tmp_path_factory.mktemp("training-home")
    root = tmp_path_factory.mktemp("training-data")
    service = ServiceThread("training", make_settings(home, [root]))
    service.start()
    yield Workspace(home, service)
    service.stop()


@pytest.fixture(scope="session")
def tclient(training) -> Iterator[Client]:
    with Client(training.service.address) as c:
        c.wait_ready()
        yield c
