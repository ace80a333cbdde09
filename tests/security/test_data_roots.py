"""Security claims of the data roots, against a real data service on loopback:

- a client path, and every file a loader opens (those found walking a folder, the shards an HF
  ``state.json`` names), resolves inside the data roots, symlinks followed; what lands outside is
  PERMISSION_DENIED (PATH_OUTSIDE_ROOTS) naming the field, and the message names the path
  relative to its root, never the server's absolute paths;
- forgeline's own store (FORGELINE_HOME, the artifact folder) is no data root, even where a data
  root holds it: artifacts are reached by id (PATH_IN_STORE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import PermissionDenied
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import make_settings, serving

SECRET = "hunter2-the-secret-line"


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict[str, Path]:
    """Two data roots, FORGELINE_HOME inside the first (as when the operator's data root is a
    parent folder), and a folder outside every root holding a secret file and a saved HF dataset."""
    base = tmp_path_factory.mktemp("roots")
    first, second, outside = base / "first", base / "second", base / "outside"
    for folder in (first, second, outside):
        folder.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n")
    (outside / "more").mkdir()
    (outside / "more" / "also-secret.txt").write_text(f"{SECRET} too\n")
    (second / "shared.txt").write_text("a line from the second root\n")
    _save_hf({"text": [SECRET, SECRET], "label": [0, 1]}, outside / "secret-ds")
    return {"base": base, "first": first, "second": second, "outside": outside}


@pytest.fixture(scope="module")
def client(layout) -> Iterator[Client]:
    home = layout["first"] / "home"
    with serving("data", make_settings(home, [layout["first"], layout["second"]])) as c:
        yield c


def _save_hf(columns: dict, folder: Path) -> None:
    import datasets

    datasets.Dataset.from_dict(columns).save_to_disk(str(folder))


def ingest(client: Client, source: str, name: str, **kwargs) -> pb.IngestDatasetResponse:
    op = client.data.IngestDataset(pb.IngestDatasetRequest(source=source, name=name, **kwargs))
    return client.wait(op, pb.IngestDatasetResponse)


def names(client: Client) -> set[str]:
    listed = client.data.ListDatasets(pb.ListDatasetsRequest(page_size=500)).datasets
    return {d.name for d in listed}


def refused(client: Client, layout, source: str, name: str, reason: str, **kwargs) -> str:
    """Ingesting ``source`` is refused for ``reason`` before any operation starts, naming the
    field and no absolute server path, and leaves no dataset; the message."""
    with pytest.raises(PermissionDenied) as caught:
        ingest(client, source, name, **kwargs)
    error = caught.value
    assert (error.reason, error.metadata) == (reason, {"field": "source"})
    assert error.message.startswith("source: ")
    assert str(layout["base"]) not in error.message
    assert SECRET not in error.message
    assert name not in names(client)
    return error.message


def spec(name: str, **config) -> common_pb2.PluginSpec:
    return common_pb2.PluginSpec(name=name, config=struct(config))


# --- item 1: walking a folder follows no symlink out of the roots ------------------------------


@pytest.mark.parametrize("target", ["outside-file", "etc-passwd"])
def test_a_file_symlink_in_a_folder_leading_out_refuses_the_folder(client, layout, target):
    folder = layout["first"] / f"notes-{target}"
    folder.mkdir()
    (folder / "kept.txt").write_text("an honest line\n")
    escape = layout["outside"] / "secret.txt" if target == "outside-file" else Path("/etc/passwd")
    (folder / "leak.txt").symlink_to(escape)
    message = refused(client, layout, str(folder), f"walk-{target}", "PATH_OUTSIDE_ROOTS")
    assert f"data root #1: notes-{target}/leak.txt" in message
    assert "/etc/passwd" not in message


def test_a_folder_symlink_leading_out_refuses_the_folder(client, layout):
    folder = layout["first"] / "by-class"
    folder.mkdir()
    (folder / "pos.txt").write_text("tasty\n")
    (folder / "neg").symlink_to(layout["outside"] / "more", target_is_directory=True)
    message = refused(client, layout, "by-class", "walk-dir", "PATH_OUTSIDE_ROOTS")
    assert "data root #1: by-class/neg" in message


def test_a_symlinked_source_is_refused_without_naming_its_target(client, layout):
    (layout["first"] / "innocent.txt").symlink_to(layout["outside"] / "secret.txt")
    message = refused(client, layout, "innocent.txt", "direct-link", "PATH_OUTSIDE_ROOTS")
    assert "'innocent.txt'" in message and "secret.txt" not in message


def test_a_symlink_from_one_root_into_another_is_still_read(client, layout):
    folder = layout["first"] / "linked"
    folder.mkdir()
    (folder / "own.txt").write_text("a line of its own\n")
    (folder / "shared.txt").symlink_to(layout["second"] / "shared.txt")
    dataset = ingest(client, str(folder), "between-roots").dataset
    assert dataset.num_rows == 2


# --- item 2: the shards an HF save_to_disk folder names stay inside the roots ------------------


def _tampered_hf(layout, case: str) -> Path:
    """A save_to_disk folder in the first root whose state.json names a shard outside."""
    folder = layout["first"] / f"hf-{case}"
    _save_hf({"text": ["harmless"], "label": [0]}, folder)
    shard = layout["outside"] / "secret-ds" / "data-00000-of-00001.arrow"
    if case == "absolute":
        named = str(shard)
    elif case == "dot-dot":
        named = f"../../outside/secret-ds/{shard.name}"
    else:  # a shard file that is itself a symlink leading out
        named = "linked.arrow"
        (folder / named).symlink_to(shard)
    state = json.loads((folder / "state.json").read_text())
    state["_data_files"] = [{"filename": named}]
    (folder / "state.json").write_text(json.dumps(state))
    return folder


@pytest.mark.parametrize("case", ["absolute", "dot-dot", "symlink"])
def test_hf_disk_refuses_shards_named_outside_the_roots(client, layout, case):
    folder = _tampered_hf(layout, case)
    message = refused(client, layout, str(folder), f"hf-{case}", "PATH_OUTSIDE_ROOTS")
    assert f"data root #1: hf-{case}/state.json names a file that resolves outside" in message


def test_hf_disk_refuses_a_dataset_dict_split_outside_the_roots(client, layout):
    folder = layout["first"] / "hf-dict"
    folder.mkdir()
    split = "../../outside/secret-ds"
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": [split]}))
    message = refused(
        client,
        layout,
        str(folder),
        "hf-dict",
        "PATH_OUTSIDE_ROOTS",
        loader=spec("hf_disk", split=split),
    )
    assert "data root #1: hf-dict/dataset_dict.json names a file that" in message


def test_hf_disk_still_reads_the_split_asked_for(client, layout):
    import datasets

    folder = layout["first"] / "hf-honest"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}),
            "test": datasets.Dataset.from_dict({"text": ["d"], "label": [1]}),
        }
    ).save_to_disk(str(folder))
    dataset = ingest(client, str(folder), "hf-test", loader=spec("hf_disk", split="test")).dataset
    assert dataset.num_rows == 1 and dataset.label_column == "label"


# --- item 13: forgeline's own store is no data root ------------------------------------------


@pytest.mark.parametrize(
    "source", ["home/artifacts/catalog.db", "{home}/artifacts/catalog.db", "home"]
)
def test_the_artifact_catalog_cannot_be_ingested_by_path(client, layout, source):
    source = source.format(home=layout["first"] / "home")
    message = refused(
        client,
        layout,
        source,
        "catalog-leak",
        "PATH_IN_STORE",
        loader=spec("txt", encoding="latin-1"),
    )
    assert "artifacts are reached by id" in message


def test_a_symlink_into_the_store_is_refused(client, layout):
    (layout["second"] / "catalog.txt").symlink_to(layout["first"] / "home/artifacts/catalog.db")
    folder = layout["second"] / "with-store"
    folder.mkdir()
    (folder / "plain.txt").write_text("a plain line\n")
    (folder / "objects").symlink_to(layout["first"] / "home/artifacts/objects")
    refused(
        client,
        layout,
        str(layout["second"] / "catalog.txt"),
        "store-link",
        "PATH_IN_STORE",
        loader=spec("txt", encoding="latin-1"),
    )
    message = refused(client, layout, str(folder), "store-folder", "PATH_IN_STORE")
    assert "data root #2: with-store/objects" in message


def test_the_artifact_folder_is_no_root_when_home_lies_outside_them(data_service):
    """The shared data service's home is in no data root; its artifact folder used to be one."""
    catalog = data_service.settings.artifacts_dir / "catalog.db"
    with Client(data_service.address) as other:
        with pytest.raises(PermissionDenied) as caught:
            other.data.IngestDataset(
                pb.IngestDatasetRequest(source=str(catalog), loader=spec("txt", encoding="latin-1"))
            )
    assert caught.value.reason == "PATH_IN_STORE"
    assert str(data_service.settings.home) not in caught.value.message
