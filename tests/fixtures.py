"""What the integration folders share, in one place: forgeline services started in this process
once per test session, each with the workspace its tests put datasets into and a ready client,
and the tiny reviews and model configs the training, tuning, compression and memory tests use.

tests/conftest.py registers this module as a pytest plugin, so its fixtures reach every folder
(a test module that defines a fixture of the same name overrides it for itself).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.server import ServiceThread
from forgeline.testing import classifiers
from forgeline.testing.classifiers import BAD, GOOD  # noqa: F401 - the tests import them from here
from forgeline.v1 import common_pb2
from forgeline.v1 import memory_service_pb2 as mpb
from forgeline.v1 import training_service_pb2 as tpb
from tests.conftest import make_settings

# --- tiny data and models ---------------------------------------------------------------------

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


def pip_install(package: Path, tmp: Path) -> Path:
    """``package`` (a folder with a pyproject.toml) built and installed with pip into a fresh
    folder under ``tmp``, never into the venv; returns that folder (for PYTHONPATH)."""
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp / "source"
    shutil.copytree(
        package,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*_cache"),
    )
    target = tmp / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"pip could not install {package.name}:\n{done.stderr}"
    return target


def reviews(copies: int, offset: int = 0) -> pa.Table:
    """``copies`` copies of every GOOD ("pos") and BAD ("neg") review, numbered from
    ``offset``, as a table with columns text and label."""
    texts, labels = classifiers.reviews(copies, offset)
    return pa.table({"text": texts, "label": labels})


def spec(name: str, **config) -> common_pb2.PluginSpec:
    """A plugin choice as the requests carry it."""
    return common_pb2.PluginSpec(name=name, config=struct(config))


def tiny_bert(vocab: int = 120) -> tpb.ModelSource:
    """A TrainModelRequest's model source: a random-init TINY_BERT built by the service."""
    return tpb.ModelSource(
        from_config=tpb.ModelFromConfig(
            model_type="bert", config=struct(TINY_BERT), vocab_size=vocab
        )
    )


def memory_samples(n: int, d: int, seed: int = 0, offset: int = 0) -> list[mpb.MemorySample]:
    """``n`` samples with random ``d``-dimensional vectors, labels, sources and metadata."""
    vectors = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return [
        mpb.MemorySample(
            text=f"sample {i + offset}",
            label=("pos", "neg", "neutral")[(i + offset) % 3],
            source="app" if (i + offset) % 2 else "batch",
            metadata=struct({"shard": (i + offset) % 4}),
            vector=vectors[i].tolist(),
        )
        for i in range(n)
    ]


def add_samples(client: Client, memory: str, samples: list[mpb.MemorySample], chunk: int = 250):
    """AddSamples streamed in chunks of ``chunk`` samples (the memory is named in the first)."""

    def messages():
        for start in range(0, len(samples), chunk):
            yield mpb.AddSamplesRequest(
                memory=memory if start == 0 else "", samples=samples[start : start + chunk]
            )

    return client.memory.AddSamples(messages())


# --- services started in this process --------------------------------------------------------


class Workspace:
    """A service running in this process and its home, with the artifact store under it for
    tests to put datasets and models into (the way the data service would)."""

    def __init__(self, home: Path, service: ServiceThread) -> None:
        self.home, self.service = home, service

    @cached_property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.home / "artifacts")

    @cached_property
    def datasets(self) -> DatasetRepository:
        return DatasetRepository(self.store)

    def dataset(self, table: pa.Table, name: str, label: str = "label") -> Dataset:
        return self.datasets.save(
            table, name=name, text_column="text", label_column=label, lineage=Lineage()
        )


def started(tmp_path_factory: pytest.TempPathFactory, name: str, **settings) -> Iterator[Workspace]:
    """Service ``name`` in this process over a fresh home and data root, stopped when the
    fixture that yields from this ends; ``settings`` override make_settings' defaults."""
    home = tmp_path_factory.mktemp(f"{name}-home")
    root = tmp_path_factory.mktemp(f"{name}-data")
    service = ServiceThread(name, make_settings(home, [root], **settings)).start()
    try:
        yield Workspace(home, service)
    finally:
        service.stop()


def data_gateway(
    tmp_path_factory, data_service: ServiceThread, data_root: Path
) -> Iterator[ServiceThread]:
    """A gateway in this process over the session's data service (its data root too), ready;
    stopped when the fixture that yields from this ends."""
    settings = make_settings(
        tmp_path_factory.mktemp("gateway-home"),
        [data_root],
        addresses={"data": data_service.address},
    )
    thread = ServiceThread("gateway", settings).start()
    try:
        with Client(thread.address) as client:
            client.wait_ready()
        yield thread
    finally:
        thread.stop()


def ready_client(address: str) -> Iterator[Client]:
    """A client of ``address`` once its service reports ready, closed when the fixture ends."""
    with Client(address) as client:
        client.wait_ready()
        yield client


@pytest.fixture(scope="session")
def training(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    """The training service, sharing the session's local Ray."""
    yield from started(tmp_path_factory, "training")


@pytest.fixture(scope="session")
def tclient(training) -> Iterator[Client]:
    yield from ready_client(training.service.address)


@pytest.fixture(scope="session")
def tuning(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    """The tuning service, sharing the session's local Ray."""
    yield from started(tmp_path_factory, "tuning")


@pytest.fixture(scope="session")
def tuner(tuning) -> Iterator[Client]:
    yield from ready_client(tuning.service.address)


@pytest.fixture(scope="session")
def compression(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    """The compression service, sharing the session's local Ray."""
    yield from started(tmp_path_factory, "compression")


@pytest.fixture(scope="session")
def compressor(compression) -> Iterator[Client]:
    yield from ready_client(compression.service.address)


@pytest.fixture(scope="session")
def memory_service(tmp_path_factory) -> Iterator[Workspace]:
    """The memory service (no Ray needed; skipped where faiss is not installed)."""
    pytest.importorskip("faiss")
    yield from started(tmp_path_factory, "memory")


@pytest.fixture(scope="session")
def mem(memory_service) -> Iterator[Client]:
    yield from ready_client(memory_service.service.address)
