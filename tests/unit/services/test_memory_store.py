"""The memory store on real FAISS and SQLite: search by cosine similarity with filters,
deletions, every index type, persistence across a reopen (from a snapshot and from the log
alone), a snapshot whose digest does not match refused with DataLoss, a torn snapshot write
that never reaches the manifest, and concurrent adds."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("faiss")

from forgeline.errors import (  # noqa: E402
    Aborted,
    AlreadyExists,
    DataLoss,
    InvalidArgument,
    NotFound,
)
from forgeline.services.memory.store import (  # noqa: E402
    IndexConfig,
    MemoryConfig,
    MemoryStore,
    Sample,
)

D = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def samples(n: int, offset: int = 0) -> list[Sample]:
    return [
        Sample(
            text=f"text {i + offset}",
            label="pos" if (i + offset) % 2 else "neg",
            source="a" if i + offset < 50 else "b",
            metadata={"shard": (i + offset) % 3},
        )
        for i in range(n)
    ]


def make(store: MemoryStore, name: str = "m", index_type: str = "flat", **index) -> None:
    store.create(MemoryConfig(name, IndexConfig(dimension=D, index_type=index_type, **index)))


@pytest.mark.parametrize(
    "index_type,extra", [("flat", {}), ("hnsw", {}), ("ivf", {"ivf_lists": 4, "ivf_probes": 4})]
)
def test_every_index_type_finds_each_vector_first_and_honours_deletes(tmp_path, index_type, extra):
    store = MemoryStore(tmp_path)
    make(store, index_type=index_type, **extra)
    data = vectors(200)
    ids = store.add("m", samples(200), data)
    assert ids == list(range(1, 201))
    hits = store.search("m", data[:20], k=3)
    assert [h[0].id for h in hits] == ids[:20]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0][0].sample.text == "text 0" and hits[0][0].sample.metadata == {"shard": 0}
    if index_type == "ivf":
        assert store.stats("m").trained  # 200 >= 39 x 4 lists
    assert store.delete("m", ids=[1, 2, 999]) == 2
    again = store.search("m", data[:2], k=5)
    assert all(h.id not in (1, 2) for row in again for h in row)
    assert store.stats("m").samples == 198 and store.stats("m").deleted == 2


def test_filters_by_label_source_and_metadata(tmp_path):
    store = MemoryStore(tmp_path)
    make(store)
    data = vectors(100)
    store.add("m", samples(100), data)
    hits = store.search("m", data[:1], k=10, where={"label": "pos"})[0]
    assert len(hits) == 10 and all(h.sample.label == "pos" for h in hits)
    hits = store.search("m", data[:1], k=100, where={"source": "b", "metadata.shard": 1})[0]
    assert hits and all(h.sample.source == "b" and h.sample.metadata["shard"] == 1 for h in hits)
    assert len(hits) == sum(1 for i in range(50, 100) if i % 3 == 1)
    assert store.search("m", data[:1], k=5, where={"label": "none"}) == [[]]
    with pytest.raises(InvalidArgument, match="filter.text"):
        store.search("m", data[:1], k=5, where={"text": "x"})
    assert store.delete("m", where={"source": "a"}) == 50
    assert store.stats("m").sources == {"b": 50}


def test_bad_requests_name_the_field(tmp_path):
    store = MemoryStore(tmp_path)
    make(store)
    with pytest.raises(AlreadyExists):
        make(store)
    with pytest.raises(InvalidArgument, match="name"):
        make(store, name="Bad Name")
    with pytest.raises(InvalidArgument, match="index_type"):
        make(store, name="x", index_type="lsh")
    with pytest.raises(InvalidArgument, match="dimension"):
        store.add("m", samples(2), np.ones((2, D + 1), dtype=np.float32))
    with pytest.raises(InvalidArgument, match="finite"):
        store.add("m", samples(1), np.full((1, D), np.nan, dtype=np.float32))
    with pytest.raises(NotFound, match="memories: \\['m'\\]"):
        store.stats("nope")


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_a_reopened_store_has_every_sample_from_its_snapshot_and_its_log(tmp_path, index_type):
    store = MemoryStore(tmp_path)
    make(store, index_type=index_type, ivf_lists=2, ivf_probes=2)
    data = vectors(120)
    store.add("m", samples(100), data[:100])
    store.snapshot("m")
    store.add("m", samples(20, offset=100), data[100:])  # only in the log
    store.delete("m", ids=[5])
    store._db.close()  # a crash: no close(), no snapshot of the last adds

    reopened = MemoryStore(tmp_path)
    stats = reopened.stats("m")
    assert stats.samples == 119 and stats.snapshot_samples == 100
    found = [row[0].id for row in reopened.search("m", data, k=1)]
    assert (
        found[100:] == list(range(101, 121))
        and found[:5] == [1, 2, 3, 4, 5 + 1]
        or (found[4] != 5 and found[100:] == list(range(101, 121)))
    )
    assert all(h.id != 5 for row in reopened.search("m", data[4:5], k=10) for h in row)
    reopened.close()
    assert MemoryStore(tmp_path).stats("m").snapshot_samples == 120


def test_a_snapshot_that_does_not_match_its_manifest_is_refused(tmp_path):
    store = MemoryStore(tmp_path)
    make(store)
    store.add("m", samples(10), vectors(10))
    store.close()
    manifest = json.loads((tmp_path / "memories" / "m" / "manifest.json").read_text())
    index = tmp_path / "memories" / "m" / manifest["file"]
    index.write_bytes(index.read_bytes()[:-7] + b"garbage")
    with pytest.raises(DataLoss) as err:
        MemoryStore(tmp_path).stats("m")
    assert err.value.reason == "INDEX_DIGEST_MISMATCH"


def test_a_torn_snapshot_write_never_replaces_the_last_good_one(tmp_path):
    store = MemoryStore(tmp_path)
    make(store)
    data = vectors(30)
    store.add("m", samples(20), data[:20])
    store.snapshot("m")
    store.add("m", samples(10, offset=20), data[20:])
    store._db.close()
    # A crash in the middle of the next snapshot: half a temporary file, manifest untouched.
    folder = tmp_path / "memories" / "m"
    (folder / "index-000000000030.faiss.tmp").write_bytes(b"\x00" * 100)
    reopened = MemoryStore(tmp_path)
    assert reopened.stats("m").samples == 30
    assert [r[0].id for r in reopened.search("m", data, k=1)] == list(range(1, 31))


def test_concurrent_adds_get_distinct_ids_and_all_land(tmp_path):
    store = MemoryStore(tmp_path)
    make(store)
    results: list[list[int]] = []

    def add(seed: int) -> None:
        for _ in range(10):
            results.append(store.add("m", samples(5), vectors(5, seed)))

    threads = [threading.Thread(target=add, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(i for batch in results for i in batch)
    assert ids == list(range(1, 201))
    assert store.stats("m").samples == 200 and store.config("m").index.dimension == D


def test_an_update_s_samples_and_state_land_together_or_not_at_all(tmp_path):
    store = MemoryStore(tmp_path)
    store.create(MemoryConfig("m", IndexConfig(dimension=D)))
    assert store.continual_state("m") == {}
    store.add(
        "m", samples(3), vectors(3), state={"model_id": "mdl_a", "history": []}, expect_model=""
    )
    stats = store.stats("m")
    assert stats.samples == 3 and stats.model_id == "mdl_a"

    # A sample that cannot be stored rolls back the state change with it.
    broken = samples(2)
    broken[1].metadata = {"bad": object()}
    with pytest.raises(TypeError):
        store.add("m", broken, vectors(2), state={"model_id": "mdl_b"}, expect_model="mdl_a")
    assert store.stats("m").samples == 3 and store.continual_state("m")["model_id"] == "mdl_a"

    # An update that started from a model the memory no longer has is refused: nothing lands
    # (a second "first" update too).
    with pytest.raises(Aborted):
        store.add("m", samples(2), vectors(2), state={"model_id": "mdl_c"}, expect_model="mdl_x")
    with pytest.raises(Aborted):
        store.add("m", samples(2), vectors(2), state={"model_id": "mdl_c"}, expect_model="")
    assert store.stats("m").samples == 3

    store.add("m", [], [], state={"model_id": "mdl_b", "tasks": {"t": {}}}, expect_model="mdl_a")
    store.close()
    reopened = MemoryStore(tmp_path)
    stats = reopened.stats("m")
    assert stats.samples == 3 and stats.model_id == "mdl_b" and stats.tasks == ["t"]
    with pytest.raises(NotFound):
        reopened.continual_state("nope")
    reopened.close()


def test_a_search_returns_its_own_memory_s_samples(tmp_path):
    store = MemoryStore(tmp_path)
    make(store, "a")
    make(store, "b")
    store.add("a", [Sample(text="a-0"), Sample(text="a-1")], vectors(2))
    store.add("b", [Sample(text="b-0"), Sample(text="b-1")], vectors(2))  # the same ids, 1 and 2
    hits = store.search("a", vectors(2)[:1], 2)[0]
    assert [h.sample.text for h in hits] == ["a-0", "a-1"]
    store.close()
