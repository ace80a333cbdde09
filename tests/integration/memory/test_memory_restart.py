"""A memory service process killed (SIGKILL) in the middle of a stream keeps every committed
sample and serves it after restart; a graceful stop writes a snapshot; a snapshot that does not
match its manifest is refused with DATA_LOSS while the other memories keep serving."""

from __future__ import annotations

import json
import time

import pytest

from forgeline.client import Client
from forgeline.errors import DataLoss, ForgelineError
from forgeline.v1 import memory_service_pb2 as pb
from tests.conftest import ServiceProcess
from tests.fixtures import add_samples, memory_samples

D = 8


def stats(client, name: str) -> pb.MemoryStats:
    return client.memory.GetMemoryStats(pb.GetMemoryStatsRequest(memory=name)).memory


def test_a_killed_service_keeps_what_it_committed_and_refuses_a_tampered_snapshot(tmp_path):
    pytest.importorskip("faiss")
    service = ServiceProcess("memory", tmp_path, [tmp_path]).start()
    samples = memory_samples(700, D, seed=3)
    try:
        with Client(service.address) as client:
            client.wait_ready()
            for name in ("kept", "other"):
                client.memory.CreateMemory(
                    pb.CreateMemoryRequest(name=name, index=pb.IndexOptions(dimension=D))
                )
            add_samples(client, "other", samples[:10])

            def stream():
                yield pb.AddSamplesRequest(memory="kept", samples=samples[:600])
                deadline = time.monotonic() + 30  # the first 512 are committed as one batch
                while stats(client, "kept").samples < 512 and time.monotonic() < deadline:
                    time.sleep(0.05)
                service.kill()
                yield pb.AddSamplesRequest(samples=samples[600:])

            with pytest.raises(ForgelineError):
                client.memory.AddSamples(stream())
    finally:
        if service.proc.poll() is None:
            service.kill()

    service = ServiceProcess("memory", tmp_path, [tmp_path]).start()
    with Client(service.address) as client:
        client.wait_ready()
        after = stats(client, "kept")
        assert after.samples == 512 and after.snapshot_samples == 0  # all from the log
        hits = client.memory.Search(
            pb.SearchRequest(memory="kept", vector=samples[100].vector, k=1)
        ).hits
        assert hits[0].sample.id == 101 and hits[0].sample.text == "sample 100"
        added = add_samples(client, "kept", samples[512:])
        assert list(added.ids) == list(range(513, 701))
    assert service.terminate() == 0  # a graceful stop writes the snapshots

    folder = tmp_path / "services" / "memory" / "memories" / "kept"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["upto"] == 700
    snapshot = folder / manifest["file"]
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    snapshot.write_bytes(bytes(data))

    service = ServiceProcess("memory", tmp_path, [tmp_path]).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            with pytest.raises(DataLoss) as err:
                stats(client, "kept")
            assert err.value.reason == "INDEX_DIGEST_MISMATCH"
            assert stats(client, "other").samples == 10
            listed = client.memory.ListMemories(pb.ListMemoriesRequest()).memories
            assert {m.name: m.samples for m in listed} == {"kept": 700, "other": 10}
    finally:
        service.kill()
