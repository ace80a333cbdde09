"""Which new rows an update learns from."""

from __future__ import annotations

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.selectors import ScoredRows, Selector
from forgeline.errors import InvalidArgument


def _checked(rows: ScoredRows):
    import numpy as np

    probabilities = np.asarray(rows.probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(rows):
        raise InvalidArgument.for_field(
            "rows.probabilities", f"expected {len(rows)} rows of class probabilities"
        )
    return probabilities, np.asarray(rows.labels, dtype=np.int64)


class Confidence(Selector):
    """Keeps the rows the model is unsure about (top probability under the threshold) or, when
    configured, gets wrong; what it already knows confidently is left out."""

    name = "confidence"

    class Config(PluginConfig):
        threshold: float = Field(
            0.9,
            gt=0.0,
            le=1.0,
            description="Rows whose top class probability is below this are kept.",
        )
        keep_wrong: bool = Field(
            True, description="Also keep rows the model predicts wrongly, however confident."
        )

    def select(self, rows: ScoredRows) -> list[int]:
        probabilities, labels = _checked(rows)
        if not len(labels):
            return []
        keep = probabilities.max(axis=1) < self.config.threshold
        if self.config.keep_wrong:
            keep |= probabilities.argmax(axis=1) != labels
        return [int(i) for i in keep.nonzero()[0]]


class All(Selector):
    """Keeps every new row (plain fine-tuning on the new data)."""

    name = "all"

    def select(self, rows: ScoredRows) -> list[int]:
        _checked(rows)
        return list(range(len(rows)))
