"""Z-score outlier removal on a numeric column or on text length, vectorized with numpy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import InvalidArgument
from forgeline.plugins.cleaners.normalize import string_column, texts_at


class ZScoreOutliers(Cleaner):
    """Drops rows whose value or text length is more than `threshold` standard deviations out."""

    name = "zscore_outliers"

    class Config(PluginConfig):
        column: str | None = Field(
            None,
            description="Numeric column to test; default: the length in characters of the text.",
        )
        threshold: float = Field(
            3.0, gt=0.0, description="Rows with |value - mean| / std above this are dropped."
        )

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        values = self._values(table, ctx)
        present = values[~np.isnan(values)]
        mean = float(present.mean()) if len(present) else 0.0
        std = float(present.std()) if len(present) else 0.0
        threshold = self.config.threshold
        if std > 0:
            with np.errstate(invalid="ignore"):  # NaN (null) rows compare False: kept
                z = np.abs((values - mean) / std)
                drop = z > threshold
        else:
            z, drop = np.zeros(len(values)), np.zeros(len(values), dtype=bool)
        dropped = np.flatnonzero(drop)
        shown = dropped[: self.MAX_EXAMPLES]
        texts = texts_at(table, ctx.text_column, shown)
        what = self.config.column or "length"
        examples = [
            (text, f"{what} {values[row]:g}: |z|={z[row]:.1f} > {threshold:g}")
            for text, row in zip(texts, shown, strict=True)
        ]
        details = {"mean": mean, "std": std, "threshold": threshold, "dropped": int(len(dropped))}
        return CleanResult(table.filter(pa.array(~drop)), examples, details)

    def _values(self, table: pa.Table, ctx: CleanContext) -> np.ndarray:
        """float64 values to test, NaN where null."""
        name = self.config.column
        if name is None:
            column = pc.utf8_length(string_column(table, ctx.text_column, "config.column"))
        elif name not in table.column_names:
            raise InvalidArgument.for_field(
                "config.column",
                f"column {name!r} not in dataset: columns are {', '.join(table.column_names)}",
            )
        else:
            column = table.column(name)
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                raise InvalidArgument.for_field(
                    "config.column", f"column {name!r} holds {column.type}, not numbers"
                )
        return column.cast(pa.float64()).to_numpy()
