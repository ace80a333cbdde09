"""Label balancing with imbalanced-learn: random over/undersampling of rows, or SMOTE on features.

Rows are resampled by index, so every column of a chosen row is kept; SMOTE's synthetic rows take
their other columns from the nearest real row of the same label.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.plugins.cleaners.normalize import texts_at


class BalanceLabels(Cleaner):
    """Evens out label counts: random over- or undersampling of rows, or SMOTE on features."""

    name = "balance_labels"

    class Config(PluginConfig):
        method: Literal["auto", "oversample", "smote", "undersample"] = Field(
            "auto",
            description="oversample: repeat random rows of smaller labels; undersample: keep a "
            "random subset of larger labels; smote: synthesize rows from `features`; auto: "
            "smote when features are given, else oversample.",
        )
        features: list[str] | None = Field(
            None, min_length=1, description="Numeric feature columns SMOTE interpolates."
        )
        k_neighbors: int = Field(5, ge=1, description="Neighbours SMOTE interpolates between.")

        @model_validator(mode="after")
        def _smote_has_features(self) -> Self:
            if self.method == "smote" and not self.features:
                raise ValueError("method 'smote' needs `features`: the numeric columns to use")
            return self

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        codes, labels = self._label_codes(table, ctx.label_column)
        method = self.config.method
        if method == "auto":
            method = "smote" if self.config.features else "oversample"
        before = _counts(codes, labels)
        if len(before) < 2:  # nothing to balance
            details = {"method": method, "counts_before": before, "counts_after": before}
            return CleanResult(table, [], details)
        if method == "smote":
            out, examples, out_codes = self._smote(table, codes, labels, ctx)
        else:
            out, examples, out_codes = self._resample(table, codes, labels, method, ctx)
        after = _counts(out_codes, labels)
        details = {"method": method, "counts_before": before, "counts_after": after}
        return CleanResult(out, examples, details)

    def _label_codes(self, table: pa.Table, label_column: str) -> tuple[np.ndarray, list]:
        """Label of each row as a small integer, and the label value of each integer."""
        if not label_column:
            raise FailedPrecondition(
                f"{self.name} needs a label column and this dataset has none; name one at "
                "ingest (columns.label)",
                reason="NO_LABEL_COLUMN",
            )
        if label_column not in table.column_names:
            raise InvalidArgument.for_field(
                "label_column",
                f"column {label_column!r} not in dataset: columns are "
                f"{', '.join(table.column_names)}",
            )
        column = table.column(label_column)
        if column.null_count:
            raise InvalidArgument.for_field(
                "label_column",
                f"label column {label_column!r} has {column.null_count} null values; drop or "
                "fill them before balancing",
            )
        encoded = pc.dictionary_encode(column)
        if not encoded.num_chunks:
            return np.zeros(0, dtype=np.int64), []
        codes = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])
        # the chunks share one dictionary that grows as they are encoded: the last one is whole
        labels = encoded.chunk(encoded.num_chunks - 1).dictionary.to_pylist()
        return codes.astype(np.int64), labels

    def _resample(
        self, table: pa.Table, codes: np.ndarray, labels: list, method: str, ctx: CleanContext
    ) -> tuple[pa.Table, list[tuple[str, str]], np.ndarray]:
        from imblearn.over_sampling import RandomOverSampler
        from imblearn.under_sampling import RandomUnderSampler

        if method == "oversample":
            sampler = RandomOverSampler(random_state=ctx.seed)
        else:
            sampler = RandomUnderSampler(random_state=ctx.seed)
        sampler.fit_resample(np.arange(len(codes)).reshape(-1, 1), codes)
        rows = sampler.sample_indices_
        if method == "oversample":
            # the originals in order, then the copies
            shown = rows[len(codes) : len(codes) + self.MAX_EXAMPLES]
            reasons = [f"copy of row {row} (label {labels[codes[row]]})" for row in shown]
        else:
            rows = np.sort(rows)
            dropped = np.setdiff1d(np.arange(len(codes)), rows)
            shown = dropped[: self.MAX_EXAMPLES]
            reasons = [f"dropped to balance label {labels[codes[row]]}" for row in shown]
        examples = list(zip(texts_at(table, ctx.text_column, shown), reasons, strict=True))
        return table.take(rows), examples, codes[rows]

    def _smote(
        self, table: pa.Table, codes: np.ndarray, labels: list, ctx: CleanContext
    ) -> tuple[pa.Table, list[tuple[str, str]], np.ndarray]:
        from imblearn.over_sampling import SMOTE
        from sklearn.neighbors import NearestNeighbors

        names = self.config.features or []
        features = np.column_stack([self._feature(table, name, i) for i, name in enumerate(names)])
        counts = np.bincount(codes)
        k = self.config.k_neighbors
        for code, count in enumerate(counts):
            if count < counts.max() and count <= k:
                raise InvalidArgument.for_field(
                    "config.k_neighbors",
                    f"label {labels[code]!r} has {count} rows; SMOTE needs more than "
                    f"k_neighbors={k} rows in every label it oversamples",
                )
        resampled, resampled_codes = SMOTE(k_neighbors=k, random_state=ctx.seed).fit_resample(
            features, codes
        )
        synthetic, synthetic_codes = resampled[len(codes) :], resampled_codes[len(codes) :]
        # other columns of a synthetic row come from the nearest real row with its label
        donors = np.empty(len(synthetic), dtype=np.int64)
        for code in np.unique(synthetic_codes):
            real = np.flatnonzero(codes == code)
            made = np.flatnonzero(synthetic_codes == code)
            nearest = NearestNeighbors(n_neighbors=1).fit(features[real])
            donors[made] = real[nearest.kneighbors(synthetic[made], return_distance=False)[:, 0]]
        new_rows = table.take(donors)
        for j, name in enumerate(names):
            index = table.column_names.index(name)
            field = table.schema.field(index)
            values = synthetic[:, j]
            if pa.types.is_integer(field.type):
                values = np.rint(values)
            new_rows = new_rows.set_column(index, field, pa.array(values).cast(field.type))
        shown = donors[: self.MAX_EXAMPLES]
        reasons = [
            f"synthetic label {labels[codes[row]]} row (SMOTE), other columns from row {row}"
            for row in shown
        ]
        examples = list(zip(texts_at(table, ctx.text_column, shown), reasons, strict=True))
        return pa.concat_tables([table, new_rows]), examples, resampled_codes

    def _feature(self, table: pa.Table, name: str, i: int) -> np.ndarray:
        field_path = f"config.features[{i}]"
        if name not in table.column_names:
            raise InvalidArgument.for_field(
                field_path,
                f"column {name!r} not in dataset: columns are {', '.join(table.column_names)}",
            )
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise InvalidArgument.for_field(
                field_path, f"column {name!r} holds {column.type}, not numbers"
            )
        values = column.cast(pa.float64()).to_numpy()
        missing = int(np.isnan(values).sum())  # nulls become NaN
        if missing:
            raise InvalidArgument.for_field(
                field_path, f"column {name!r} has {missing} missing (null or NaN) values"
            )
        return values


def _counts(codes: np.ndarray, labels: list) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(labels))
    return {str(label): int(count) for label, count in zip(labels, counts, strict=True)}
