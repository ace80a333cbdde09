"""Text length filter: keep rows whose text has between min_chars and max_chars characters."""

from __future__ import annotations

from typing import Self

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.plugins.cleaners.normalize import string_column


class LengthFilter(Cleaner):
    """Drops rows whose text is shorter than min_chars or longer than max_chars characters."""

    name = "length_filter"

    class Config(PluginConfig):
        min_chars: int = Field(
            1, ge=0, description="Fewest characters a text may have (null text counts as 0)."
        )
        max_chars: int | None = Field(
            None, ge=1, description="Most characters a text may have; default: no limit."
        )

        @model_validator(mode="after")
        def _ordered(self) -> Self:
            if self.max_chars is not None and self.max_chars < self.min_chars:
                raise ValueError(
                    f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})"
                )
            return self

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        text = string_column(table, ctx.text_column, "text_column")
        lengths = pc.fill_null(pc.utf8_length(text), 0)
        drop = too_short = pc.less(lengths, self.config.min_chars)
        too_long = 0
        if self.config.max_chars is not None:
            above = pc.greater(lengths, self.config.max_chars)
            too_long = pc.sum(above).as_py() or 0
            drop = pc.or_(too_short, above)
        shown = pc.filter(pa.table({"text": text, "length": lengths}), drop).slice(
            0, self.MAX_EXAMPLES
        )
        examples = [(row["text"] or "", self._reason(row["length"])) for row in shown.to_pylist()]
        details = {
            "too_short": pc.sum(too_short).as_py() or 0,
            "too_long": too_long,
        }
        return CleanResult(table.filter(pc.invert(drop)), examples, details)

    def _reason(self, length: int) -> str:
        if length < self.config.min_chars:
            return f"{length} chars < min_chars {self.config.min_chars}"
        return f"{length} chars > max_chars {self.config.max_chars}"
