"""Folders written by Hugging Face datasets' save_to_disk: a Dataset, or one DatasetDict split."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pydantic import Field

from forgeline.errors import InvalidArgument, ResourceExhausted
from forgeline.registry import Loader, LoadSource, PluginConfig


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
        saved_dataset = (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
        return saved_dataset or (path / "dataset_dict.json").is_file()

    def load(self, source: LoadSource) -> pa.Table:
        import datasets

        path = source.path
        if path is None or not self.detects(path):
            raise InvalidArgument.for_field(
                "source",
                f"{path or source.url} is not a folder written by datasets' save_to_disk "
                "(no state.json + dataset_info.json, no dataset_dict.json)",
            )
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if size > source.max_bytes:
            raise ResourceExhausted(
                f"{path}: {size} bytes is over the limit of {source.max_bytes} bytes",
                reason="TOO_MANY_BYTES",
            )
        try:
            loaded = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as exc:  # missing shards, unreadable state
            raise InvalidArgument(
                f"{path}: datasets could not load this folder: {exc}", reason="MALFORMED_FILE"
            ) from exc
        if isinstance(loaded, datasets.DatasetDict):
            if self.config.split not in loaded:
                raise InvalidArgument.for_field(
                    "config.split",
                    f"split {self.config.split!r} not in {path.name}: splits are "
                    f"{', '.join(loaded)}",
                )
            loaded = loaded[self.config.split]
        if loaded.num_rows > source.max_rows:
            raise ResourceExhausted(
                f"{path}: {loaded.num_rows} rows is over the limit of {source.max_rows} rows",
                reason="TOO_MANY_ROWS",
            )
        if loaded.num_rows == 0:
            raise InvalidArgument(f"{path}: no rows", reason="EMPTY_DATASET")
        # [:] in Arrow format applies any indices mapping and yields a plain pyarrow.Table
        return loaded.with_format("arrow")[:]
