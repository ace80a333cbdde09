"""Datasets: versioned, immutable Parquet tables in the artifact store, with their schema.

In the kernel because every service reads them (data writes them; training, tuning and the
others read them by id)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.errors import FailedPrecondition, NotFound, excerpt

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Dataset:
    record: ArtifactRecord
    num_rows: int
    columns: list[tuple[str, str]]
    text_column: str
    label_column: str

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @classmethod
    def from_record(cls, record: ArtifactRecord) -> Dataset:
        meta = record.metadata
        return cls(
            record=record,
            num_rows=int(meta["num_rows"]),
            columns=[tuple(c) for c in meta["columns"]],
            text_column=meta.get("text_column", ""),
            label_column=meta.get("label_column", ""),
        )


class DatasetRepository:
    """Saves and finds datasets; a save is atomic (the artifact store's staging + rename)."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self._artifacts = artifacts

    def save(
        self,
        table: pa.Table,
        *,
        name: str,
        text_column: str,
        label_column: str,
        lineage: Lineage,
        request_id: str = "",
    ) -> Dataset:
        if table.num_rows == 0:
            raise FailedPrecondition(
                f"dataset {name!r} would have no rows; nothing was written",
                reason="EMPTY_DATASET",
            )
        metadata = {
            "num_rows": table.num_rows,
            "columns": [[f.name, str(f.type)] for f in table.schema],
            "text_column": text_column if text_column in table.column_names else "",
            "label_column": label_column if label_column in table.column_names else "",
        }
        record = self._artifacts.put_table(
            table, name=name, metadata=metadata, lineage=lineage, request_id=request_id
        )
        return Dataset.from_record(record)

    def get(self, ref: str, field: str = "dataset_id") -> Dataset:
        try:
            return Dataset.from_record(self._artifacts.get(ref, kind="dataset"))
        except NotFound as exc:
            raise NotFound(
                f"{field}: no dataset {excerpt(ref)}; list them with ListDatasets",
                reason="DATASET_NOT_FOUND",
                metadata={"field": field, "dataset_id": ref},
            ) from exc

    def find_upload(self, request_id: str) -> Dataset | None:
        record = self._artifacts.find_by_request_id(request_id)
        return Dataset.from_record(record) if record and record.kind == "dataset" else None

    def read(self, dataset: Dataset, columns: list[str] | None = None) -> pa.Table:
        return self._artifacts.read_table(dataset.record, columns=columns)

    def list(self, *, name: str = "", offset: int = 0, limit: int = 100) -> list[Dataset]:
        records = self._artifacts.list(kind="dataset", name=name, offset=offset, limit=limit)
        return [Dataset.from_record(r) for r in records]

    def batches(
        self, dataset: Dataset, *, offset: int, limit: int, batch_size: int, columns: list[str]
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(first row number, batch) pairs over rows [offset, offset+limit)."""
        table = self.read(dataset, columns=columns or None)
        end = table.num_rows if limit <= 0 else min(table.num_rows, offset + limit)
        position = offset
        for batch in table.slice(offset, max(end - offset, 0)).to_batches(batch_size):
            yield position, batch
            position += batch.num_rows
