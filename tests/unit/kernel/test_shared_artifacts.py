"""The artifact store on shared storage (a real S3 API from moto, and a shared folder): what one
machine commits, another finds by id and by name, fetches, verifies and versions; a tampered
shared object is refused; a bad URI names the setting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from forgeline import storage
from forgeline.artifacts import ArtifactStore, Lineage, sha256_tree
from forgeline.errors import DataLoss, InvalidArgument


@pytest.fixture(params=["s3", "mount"])
def shared(request, tmp_path) -> Iterator[str]:
    """A fresh shared location: a prefix of the S3 bucket, or a folder used as a mount."""
    if request.param == "mount":
        yield (tmp_path / "mount").as_uri()
        return
    bucket = request.getfixturevalue("s3_bucket")
    base, query = bucket["uri"].split("?")
    yield f"{base}-{uuid.uuid4().hex[:8]}?{query}"


def machine(tmp_path, name: str, uri: str) -> ArtifactStore:
    return ArtifactStore(tmp_path / name, shared=uri)


def test_what_one_machine_commits_another_finds_fetches_and_versions(tmp_path, shared):
    a, b = machine(tmp_path, "a", shared), machine(tmp_path, "b", shared)
    rows = pa.table({"text": ["good", "bad"], "label": [1, 0]})
    dataset = a.put_table(rows, name="reviews", metadata={}, lineage=Lineage())
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.safetensors").write_bytes(b"\0" * 1000)
    model = a.commit_dir(folder, kind="model", name="m", metadata={"k": 1}, lineage=Lineage())
    assert model.uri.startswith(storage.Location(shared).display)
    assert "?" not in model.uri  # the record names the object, not the endpoint

    # Machine b: by id (one record fetched), the content downloaded into its own cache.
    got = b.get(model.id)
    assert got == model
    path = b.verify(got)
    assert path.is_relative_to(tmp_path / "b") and sha256_tree(path) == model.sha256
    assert (path / "sub" / "weights.safetensors").stat().st_size == 1000
    assert b.read_table(b.get("reviews")).equals(rows)
    # By name and in listings, after a sync; a new version from b is seen by a.
    b.put_table(rows.slice(0, 1), name="reviews", metadata={}, lineage=Lineage())
    assert a.get("reviews").version == 2 and a.get("reviews@1").id == dataset.id
    assert {r.id for r in a.list(kind="dataset")} == {dataset.id, a.get("reviews").id}
    # A process elsewhere opens the object by its full location (options included).
    assert storage.localize(b.location(model), tmp_path / "cache").is_dir()
    a.close()
    b.close()


def test_a_tampered_shared_object_is_refused(tmp_path, shared):
    a = machine(tmp_path, "a", shared)
    record = a.put_table(pa.table({"x": [1, 2]}), name="t", metadata={}, lineage=Lineage())
    fs, path = storage.Location(a.location(record)).open()
    with fs.open_output_stream(path) as out:
        out.write(b"not the parquet that was committed")
    fresh = machine(tmp_path, "c", shared)
    with pytest.raises(DataLoss, match="does not match"):
        fresh.verify(fresh.get(record.id))


def test_a_bad_shared_uri_names_the_setting(tmp_path):
    with pytest.raises(InvalidArgument) as caught:
        ArtifactStore(tmp_path / "x", shared="nosuchscheme://bucket/prefix")
    assert caught.value.violations[0].field == "artifact_uri"
