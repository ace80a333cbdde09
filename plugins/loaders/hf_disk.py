"""Folders written by Hugging Face datasets' save_to_disk: a Dataset, or one DatasetDict split.

The folder's manifests (dataset_dict.json, state.json) name the split folders and the Arrow
shards; whoever wrote the folder wrote those names, so each is resolved inside the data roots
before it is opened (an absolute path or ``../..`` in state.json is refused, not followed). The
shards are then read here, exactly the files that were checked, as the Arrow IPC streams
save_to_disk writes (datasets would re-read the manifest and open whatever it names by then).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.loaders import Loader, LoadSource
from forgeline.errors import InvalidArgument, ResourceExhausted, excerpt

DATASET_DICT, STATE, INFO = "dataset_dict.json", "state.json", "dataset_info.json"


class HfDiskLoader(Loader):
    """A folder saved by Hugging Face datasets' save_to_disk (a Dataset or a DatasetDict split)."""

    name = "hf_disk"

    class Config(PluginConfig):
        split: str = Field("train", min_length=1, description="Split to read from a DatasetDict.")

    @classmethod
    def detects(cls, path: Path) -> bool:
        """A save_to_disk folder: a Dataset (state.json, dataset_info.json) or a DatasetDict."""
        if not path.is_dir():
            return False
        saved_dataset = (path / STATE).is_file() and (path / INFO).is_file()
        return saved_dataset or (path / DATASET_DICT).is_file()

    def load(self, source: LoadSource) -> pa.Table:
        path = source.path
        if path is None or not self.detects(path):
            raise InvalidArgument.for_field(
                "source",
                f"{path or source.url} is not a folder written by datasets' save_to_disk "
                "(no state.json + dataset_info.json, no dataset_dict.json)",
            )
        folder = source.inside_roots(path)
        if (folder / DATASET_DICT).is_file():
            folder = self._split_folder(folder, source)
        shards = [
            source.inside_roots(folder / name, named_in=folder / STATE)
            for name in _shard_names(folder / STATE, folder)
        ]
        missing = [shard.name for shard in shards if not shard.is_file()]
        if missing:
            raise _malformed(folder, f"{STATE} names missing files: {excerpt(', '.join(missing))}")
        size = sum(shard.stat().st_size for shard in shards)
        if size > source.max_bytes:
            raise ResourceExhausted(
                f"{folder}: {size} bytes is over the limit of {source.max_bytes} bytes",
                reason="TOO_MANY_BYTES",
            )
        tables, rows = [], 0
        for shard in shards:
            tables.append(_read_shard(shard))
            rows += tables[-1].num_rows
            if rows > source.max_rows:
                raise ResourceExhausted(
                    f"{folder}: more than {source.max_rows} rows is over the limit",
                    reason="TOO_MANY_ROWS",
                )
        if rows == 0:
            raise InvalidArgument(f"{folder}: no rows", reason="EMPTY_DATASET")
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _split_folder(self, folder: Path, source: LoadSource) -> Path:
        """The folder of the configured split of a DatasetDict, inside the roots."""
        splits = _manifest(folder / DATASET_DICT, folder).get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise _malformed(folder, f"{DATASET_DICT} has no list of split names")
        if self.config.split not in splits:
            raise InvalidArgument.for_field(
                "config.split",
                f"split {excerpt(self.config.split)} not in {folder.name}: splits are "
                + ", ".join(s if len(s) <= 40 else excerpt(s, 40) for s in splits[:20]),
            )
        split = source.inside_roots(folder / self.config.split, named_in=folder / DATASET_DICT)
        if not (split / STATE).is_file():
            raise _malformed(folder, f"split {excerpt(self.config.split)} has no {STATE}")
        return split


def _shard_names(state: Path, folder: Path) -> list[str]:
    files = _manifest(state, folder).get("_data_files")
    names = [f.get("filename") for f in files] if isinstance(files, list) else []
    if not names or not all(isinstance(n, str) and n for n in names):
        raise _malformed(folder, f"{STATE} names no Arrow files (_data_files)")
    return names


def _manifest(path: Path, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(folder, f"{path.name} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _malformed(folder, f"{path.name} is not a JSON object")
    return value


def _read_shard(shard: Path) -> pa.Table:
    try:
        with pa.memory_map(str(shard)) as mapped:
            return pa.ipc.open_stream(mapped).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise _malformed(shard.parent, f"{shard.name} is not an Arrow stream: {exc}") from exc


def _malformed(folder: Path, problem: str) -> InvalidArgument:
    return InvalidArgument(
        f"{folder}: datasets could not load this folder: {problem}", reason="MALFORMED_FILE"
    )
