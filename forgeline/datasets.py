"""Datasets: versioned, immutable Parquet tables in the artifact store, with their schema.

In the kernel because every service reads them (data writes them; training, tuning and the
others read them by id)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound, excerpt
from forgeline.models import SEQUENCE_CLASSIFICATION
from forgeline.names import artifact_name

STRING_TYPES = ("string", "large_string")

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.v1 import common_pb2


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

    def resolve(
        self, ref: DatasetRef, field_name: str, task: str, default: tuple[str, str] = ("", "")
    ) -> tuple[Dataset, str, str]:
        """The dataset ``ref`` names and the text and label columns a ``task`` reads from it
        (the ref's, else ``default``'s, else the dataset's own); every refusal names the field
        under ``field_name``."""
        if not ref.dataset_id:
            raise InvalidArgument.for_field(f"{field_name}.dataset_id", "a dataset is required")
        dataset = self.get(ref.dataset_id, f"{field_name}.dataset_id")
        types = dict(dataset.columns)
        text = ref.text_column or default[0] or dataset.text_column
        if not text:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column",
                f"dataset {dataset.id} has no text column; name one of {list(types)}",
            )
        if text not in types:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column",
                f"no column {text!r} in dataset {dataset.id}; columns: {list(types)}",
            )
        if types[text] not in STRING_TYPES:
            raise InvalidArgument.for_field(
                f"{field_name}.text_column", f"column {text!r} is {types[text]}, not text"
            )
        label = ""
        if task == SEQUENCE_CLASSIFICATION:
            label = ref.label_column or default[1] or dataset.label_column
            if not label:
                raise InvalidArgument.for_field(
                    f"{field_name}.label_column",
                    f"classification needs labels and dataset {dataset.id} has no label column; "
                    f"name one of {list(types)}",
                )
            if label not in types:
                raise InvalidArgument.for_field(
                    f"{field_name}.label_column",
                    f"no column {label!r} in dataset {dataset.id}; columns: {list(types)}",
                )
        return dataset, text, label

    def labels(self, dataset: Dataset, column: str, field_name: str, least: int = 2) -> list[str]:
        """The distinct labels of ``column``, sorted, as strings; refused when a row has none
        or there are fewer than ``least``."""
        import pyarrow.compute as pc

        values = self.read(dataset, columns=[column]).column(0)
        if values.null_count:
            raise FailedPrecondition(
                f"{field_name}.label_column: {values.null_count} rows of dataset {dataset.id} "
                f"have no label in {column!r}; drop or fill them first",
                reason="NULL_LABELS",
                metadata={"field": f"{field_name}.label_column"},
            )
        distinct = pc.unique(values).to_pylist()
        if len(distinct) < least:
            raise FailedPrecondition(
                f"{field_name}.label_column: column {column!r} of dataset {dataset.id} has only "
                f"{len(distinct)} class ({distinct}); classification needs at least two",
                reason="ONE_CLASS",
                metadata={"field": f"{field_name}.label_column"},
            )
        return [str(v) for v in sorted(distinct)]

    def check_labels(
        self,
        dataset: Dataset,
        column: str,
        known: list[str],
        field_name: str = "eval",
        problem: str = "never occur in the training data",
    ) -> None:
        """Refuses rows whose labels are not among ``known`` (naming
        ``<field_name>.label_column``; ``problem`` says whose labels they lack)."""
        unseen = sorted(set(self.labels(dataset, column, field_name, 1)) - set(known))
        if unseen:
            raise InvalidArgument.for_field(
                f"{field_name}.label_column",
                f"labels {unseen[:10]} {problem} (its labels: {known[:20]})",
            )

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


@dataclass(frozen=True)
class DatasetRef:
    """Which dataset a request reads and which of its columns hold the text and the label
    (plain data: the servicers fill it from a ``DatasetInput`` message)."""

    dataset_id: str = ""
    text_column: str = ""
    label_column: str = ""
    # The generative tasks' columns (forgeline.finetune.columns resolves them).
    target_column: str = ""
    prompt_column: str = ""
    response_column: str = ""
    messages_column: str = ""


def dataset_ref(message: common_pb2.DatasetInput) -> DatasetRef:
    """The ``DatasetInput`` message every service that reads a dataset takes, as plain data."""
    return DatasetRef(
        message.dataset_id,
        message.text_column,
        message.label_column,
        message.target_column,
        message.prompt_column,
        message.response_column,
        message.messages_column,
    )


def output_name(name: str) -> str:
    """``name`` when it is a valid artifact name; InvalidArgument naming ``output_name`` if not."""
    return artifact_name(name, "output_name")
