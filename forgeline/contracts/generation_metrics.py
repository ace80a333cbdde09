"""The generation_metrics contract: a GenerationMetric scores generated texts against their
references (ROUGE, BLEU, chrF, exact match), every value in 0..1."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from forgeline.contracts.base import Plugin
from forgeline.errors import InvalidArgument


@dataclass(frozen=True)
class GenerationScores:
    """What a metric found.

    ``corpus`` maps each metric key (e.g. "rougeL", "bleu") to its value over the whole corpus;
    ``per_example`` maps a key to one value per prediction, in order, where a per-example value
    means something (ROUGE F1 of one summary; not sentence BLEU). Every value is in 0..1, 1 being
    a perfect match. ``details`` says how it was computed (tokenizer, signature).
    """

    corpus: dict[str, float]
    per_example: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def check_pairs(predictions: list[str], references: list[str]) -> None:
    """Refuses what no metric can score: lists of different lengths, or nothing at all. Every
    metric calls it first, so a misaligned evaluation fails loudly instead of scoring the
    wrong pairs."""
    if len(predictions) != len(references):
        raise InvalidArgument.for_field(
            "references",
            f"{len(predictions)} predictions but {len(references)} references: a metric scores "
            "one reference per prediction",
            reason="LENGTH_MISMATCH",
        )
    if not predictions:
        raise InvalidArgument.for_field(
            "predictions", "no predictions to score", reason="NOTHING_TO_SCORE"
        )


def from_percent(value: float) -> float:
    """A 0..100 score (sacrebleu's) as 0..1, with the float error that can land it a hair
    outside (BLEU of identical texts is 100.00000000000004) clipped away."""
    return min(1.0, max(0.0, value / 100.0))


class GenerationMetric(Plugin, ABC):
    """Scores generated texts against one reference each; every value is in 0..1. The
    evaluation generates, then hands every metric the same predictions and references."""

    kind = "generation_metrics"

    @abstractmethod
    def score(self, predictions: list[str], references: list[str]) -> GenerationScores:
        """Scores ``predictions[i]`` against ``references[i]`` for every i. Calls
        ``check_pairs`` first: lists of different lengths, or empty ones, are refused."""
