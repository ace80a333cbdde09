"""The baselines contract: a Baseline is a classical model fitted beside the neural models on the
same split, the anchor they are judged against: a text classifier (task "classification"), or an
extractive summarizer (task "summarization")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from forgeline.contracts.base import Plugin, never_cancelled

CLASSIFICATION = "classification"
SUMMARIZATION = "summarization"
# What a baseline predicts for each eval text: one of the labels, or a summary of the text.
BASELINE_TASKS = (CLASSIFICATION, SUMMARIZATION)


@dataclass(frozen=True)
class BaselineContext:
    """What a baseline may need beside the rows.

        ``labels`` are the classes (sorted, as strings); every prediction is one of them
        (classification; empty for summarization).
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
    """A baseline's prediction for every eval text (a label, or a summary), and how long fitting
    took."""

    predictions: list[str]
    seconds: float
    # Non-empty: ctx.output_dir holds the fitted model in this format (e.g. "tfidf_logreg").
    model_format: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Baseline(Plugin, ABC):
    """A classical model fitted beside the neural models on the same split. The service scores
    its predictions as EvaluateModel scores a model of the same ``task`` (accuracy, macro F1 and
    a confusion matrix for classification; generation metrics such as ROUGE for
    summarization), so every baseline is measured the same way as the models it anchors."""

    kind = "baselines"
    # One of BASELINE_TASKS. A summarization baseline gets the reference summaries as
    # ``train_labels`` (it may ignore them) and predicts a summary for each eval text.
    task: ClassVar[str] = CLASSIFICATION

    @classmethod
    def kind_problem(cls) -> str | None:
        if cls.task not in BASELINE_TASKS:
            return f"{cls.__name__}.task is {cls.task!r}; one of {', '.join(BASELINE_TASKS)}"
        return None

    @abstractmethod
    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        """Fits on the training rows and predicts for each eval text: a label of
        ``ctx.labels`` (classification) or a summary (summarization)."""

    def predict_saved(self, folder: Path, texts: list[str]) -> list[str]:
        """A prediction for each text from a model this baseline stored earlier in ``folder`` (its
        ``output_dir``, with the ``model_format`` it returned), without fitting again: how
        EvaluateModel scores a baseline artifact on another dataset. Rebuild it from the safe
        files it wrote; this instance's config may differ from the stored model's. A baseline
        that stores no model keeps this default."""
        raise NotImplementedError(f"{self.name} cannot predict from a stored model")
