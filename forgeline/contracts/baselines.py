"""The baselines contract: a Baseline is a classical text classifier fitted beside the neural
models on the same split."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeline.contracts.base import Plugin, never_cancelled


@dataclass(frozen=True)
class BaselineContext:
    """What a baseline may need beside the rows.

        ``labels`` are the classes (sorted, as strings); every prediction is one of them.
        ``output_dir``, when set, is an existing empty folder: a baseline that can store its fitted
        model writes it there in a safe format (JSON, safetensors; never pickle or joblib) and says
        which in ``BaselineResult.model_format``. ``check_cancelled()`` is called between stages (at
    least once between fitting and predicting); it raises when the operation was cancelled.
    """

    labels: tuple[str, ...] = ()
    output_dir: Path | None = None
    check_cancelled: Callable[[], None] = never_cancelled


@dataclass
class BaselineResult:
    """A baseline's predicted label for every eval text, and how long fitting took."""

    predictions: list[str]
    seconds: float
    # Non-empty: ctx.output_dir holds the fitted model in this format (e.g. "tfidf_logreg").
    model_format: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Baseline(Plugin, ABC):
    """A classical text classifier fitted beside the neural models on the same split. The
    service scores its predictions (accuracy, macro F1, confusion matrix), so every baseline is
    measured the same way as EvaluateModel measures a model."""

    kind = "baselines"

    @abstractmethod
    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        """Fits on the training rows and predicts a label for each eval text."""

    def predict_saved(self, folder: Path, texts: list[str]) -> list[str]:
        """A label for each text from a model this baseline stored earlier in ``folder`` (its
        ``output_dir``, with the ``model_format`` it returned), without fitting again: how
        EvaluateModel scores a baseline artifact on another dataset. Rebuild it from the safe
        files it wrote; this instance's config may differ from the stored model's. A baseline
        that stores no model keeps this default."""
        raise NotImplementedError(f"{self.name} cannot predict from a stored model")
