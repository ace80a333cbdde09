"""A memory service on a loopback port (no Ray needed), and helpers to talk to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.v1 import memory_service_pb2 as pb
from forgeline.v1 import memory_service_pb2_grpc
from tests.conftest import ServiceThread, make_settings


class Memory:
    def __init__(self, home: Path, service) -> None:
        self.home, self.service = home, service


@pytest.fixture(scope="session")
def memory_service(tmp_path_factory) -> Iterator[Memory]:
    pytest.importorskip("faiss")
    home = tmp_path_factory.mktemp("memory-home")
    service = ServiceThread("memory", make_settings(home, [home])).start()
    yield Memory(home, service)
    service.stop()


def connect(address: str) -> Client:
    client = Client(address)
    client.memory = memory_service_pb2_grpc.MemoryServiceStub(client.channel)
    return client


@pytest.fixture(scope="session")
def mem(memory_service) -> Iterator[Client]:
    with connect(memory_service.service.address) as client:
        client.wait_ready()
        yield client


def rows(n: int, d: int, seed: int = 0, offset: int = 0) -> list[pb.MemorySample]:
    vectors = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return [
        pb.MemorySample(
            text=f"sample {i + offset}",
            label=("pos", "neg", "neutral")[(i + offset) % 3],
            source="app" if (i + offset) % 2 else "batch",
            metadata=struct({"shard": (i + offset) % 4}),
            vector=vectors[i].tolist(),
        )
        for i in range(n)
    ]


def add(client: Client, memory: str, samples: list[pb.MemorySample], chunk: int = 250):
    def messages():
        for start in range(0, len(samples), chunk):
            yield pb.AddSamplesRequest(
                memory=memory if start == 0 else "", samples=samples[start : start + chunk]
            )

    return client.memory.AddSamples(messages())
