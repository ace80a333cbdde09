"""forgeline.artifacts: the content-addressed store on a real folder with a real SQLite catalog."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage, sha256_file
from forgeline.errors import DataLoss, InvalidArgument, NotFound
from forgeline.versions import process_versions


@pytest.fixture
def store(tmp_path) -> Iterator[ArtifactStore]:
    opened = ArtifactStore(tmp_path / "artifacts")
    yield opened
    opened.close()


def table(n: int = 3, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "text": [f"review {i}" for i in range(offset, offset + n)],
            "label": pa.array([i % 2 for i in range(offset, offset + n)], type=pa.int64()),
        }
    )


def put(store: ArtifactStore, data: pa.Table, name: str = "reviews", **kwargs):
    return store.put_table(
        data, name=name, metadata={"num_rows": data.num_rows}, lineage=Lineage(), **kwargs
    )


def object_files(store: ArtifactStore) -> list[Path]:
    return sorted(p for p in (store.root / "objects").rglob("*") if p.is_file())


def test_put_table_then_read_table_round_trips(store):
    record = put(store, table())
    assert record.kind == "dataset" and record.id.startswith("ds_")
    assert (record.name, record.version) == ("reviews", 1)
    assert record.path.is_file() and record.path.suffix == ".parquet"
    assert record.path.parent.parent == (store.root / "objects").resolve()
    assert record.path.name.startswith(record.sha256)
    assert record.sha256 == sha256_file(record.path)
    assert record.size_bytes == record.path.stat().st_size
    assert record.metadata == {"num_rows": 3}
    assert store.read_table(record).equals(table())
    assert store.read_table(record, columns=["label"]).column_names == ["label"]


def test_the_same_content_twice_is_stored_once(store):
    first, second = put(store, table()), put(store, table())
    assert first.id != second.id
    assert first.sha256 == second.sha256 and first.uri == second.uri
    assert (first.version, second.version) == (1, 2)
    assert object_files(store) == [first.path]
    different = put(store, table(offset=10))
    assert different.sha256 != first.sha256
    assert len(object_files(store)) == 2


def test_versions_increment_per_name(store):
    a1, a2 = put(store, table(), name="a"), put(store, table(offset=5), name="a")
    b1 = put(store, table(offset=9), name="b")
    a3 = put(store, table(offset=20), name="a")
    assert [r.version for r in (a1, a2, b1, a3)] == [1, 2, 1, 3]


def test_get_by_id_name_and_name_at_version(store):
    v1, v2 = put(store, table()), put(store, table(offset=5))
    assert store.get(v1.id) == v1
    assert store.get("reviews").id == v2.id
    assert store.get("reviews@1").id == v1.id
    assert store.get("reviews@2", kind="dataset").id == v2.id
    with pytest.raises(InvalidArgument) as caught:
        store.get("reviews@latest")
    assert "bad version" in caught.value.message
    with pytest.raises(NotFound) as missing:
        store.get("reviews@3")
    assert missing.value.reason == "ARTIFACT_NOT_FOUND"
    with pytest.raises(NotFound):
        store.get("nothing-by-this-name")
    with pytest.raises(NotFound):
        store.get(v1.id, kind="model")


def test_list_is_newest_first_and_filters_by_name(store):
    a1 = put(store, table(), name="a")
    b1 = put(store, table(offset=3), name="b")
    a2 = put(store, table(offset=6), name="a")
    assert [r.id for r in store.list()] == [a2.id, b1.id, a1.id]
    assert [r.id for r in store.list(name="a")] == [a2.id, a1.id]
    assert [r.id for r in store.list(kind="model")] == []
    assert [r.id for r in store.list(offset=1, limit=1)] == [b1.id]


def test_verify_detects_a_tampered_object(store):
    record = put(store, table())
    content = bytearray(record.path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    record.path.write_bytes(bytes(content))
    with pytest.raises(DataLoss) as caught:
        store.read_table(record)
    assert caught.value.reason == "ARTIFACT_DIGEST_MISMATCH"
    assert caught.value.metadata == {"id": record.id}


def test_verify_detects_a_missing_object(store):
    record = put(store, table())
    record.path.unlink()
    with pytest.raises(DataLoss) as caught:
        store.verify(record)
    assert caught.value.reason == "ARTIFACT_CONTENT_MISSING"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_of_dead_processes_is_swept_and_live_ones_are_kept(tmp_path):
    root = tmp_path / "artifacts"
    store = ArtifactStore(root)
    kept = put(store, table())
    dead = root / "staging" / f"{_dead_pid()}-abcd1234"
    (dead / "model-folder").mkdir(parents=True)
    (dead / "half-written.parquet").write_bytes(b"PAR1 partial")
    (dead / "model-folder" / "weights.safetensors").write_bytes(b"\0" * 64)
    (root / "staging" / "stray-file").write_bytes(b"x")
    with store.staging_path(".parquet") as in_flight:  # another live process is mid-write
        in_flight.write_bytes(b"PAR1 still writing")
        reopened = ArtifactStore(root)
        try:
            assert not dead.exists()
            assert not (root / "staging" / "stray-file").exists()
            assert in_flight.exists()
            assert reopened.read_table(reopened.get(kept.id)).equals(table())
        finally:
            reopened.close()
    store.close()
    assert list((root / "staging").iterdir()) == []


def test_an_uncommitted_staging_path_is_removed(store):
    with pytest.raises(RuntimeError):
        with store.staging_path(".parquet") as staged:
            staged.write_bytes(b"partial")
            raise RuntimeError("writer crashed")
    assert not staged.exists()
    assert object_files(store) == []


def test_lineage_and_request_id_round_trip_through_a_reopen(tmp_path):
    lineage = Lineage(
        parent_ids=["ds_aaa", "ds_bbb"],
        producer="forgeline.v1.DataService/CleanDataset",
        operation="operations/123",
        config={"cleaners": [{"name": "dedup_near", "threshold": 0.85}], "seed": 7},
        pipeline_run="runs/9",
        pipeline_step="clean",
    )
    store = ArtifactStore(tmp_path / "artifacts")
    record = store.put_table(
        table(), name="clean", metadata={"a": [1, 2]}, lineage=lineage, request_id="req-1"
    )
    store.close()

    reopened = ArtifactStore(tmp_path / "artifacts")
    try:
        again = reopened.get(record.id)
        # The store adds the versions of Python and the main libraries that recorded it.
        assert again.lineage == replace(lineage, libraries=process_versions())
        assert again.lineage.libraries["pyarrow"] == metadata.version("pyarrow")
        assert again.metadata == {"a": [1, 2]}
        assert again.create_time == record.create_time
        assert reopened.find_by_request_id("req-1").id == record.id
        assert reopened.find_by_request_id("req-2") is None
        assert reopened.find_by_request_id("") is None
    finally:
        reopened.close()


def test_a_name_is_required(store):
    with pytest.raises(InvalidArgument) as caught:
        put(store, table(), name="")
    assert [v.field for v in caught.value.violations] == ["name"]
    assert store.list() == []


def test_every_commit_is_announced_once_with_its_record(tmp_path):
    heard = []
    store = ArtifactStore(tmp_path / "store", on_commit=heard.append)
    try:
        table = store.put_table(pa.table({"x": [1]}), name="t", metadata={}, lineage=Lineage())
        with store.staging_path() as staged:
            staged.mkdir()
            (staged / "model.safetensors").write_bytes(b"w")
            model = store.commit_dir(
                staged, kind="model", name="m", metadata={}, lineage=Lineage(), request_id="r/s"
            )
        assert heard == [table, model] and heard[1].request_id == "r/s"
    finally:
        store.close()
