"""The mitigators contract (fairness): a Mitigator makes a classifier's decisions fairer across
groups."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from forgeline.contracts.base import Plugin


@dataclass(frozen=True)
class FairnessRows:
    """Rows of a binary classification problem as a fairness mitigation sees them: ``labels``
    (0/1 numpy ints), ``groups`` (the sensitive feature's value per row, numpy strings), and what
    a model knows of each row: ``scores`` (the probability of the positive class, floats; None
    when unknown) and ``features`` (a 2-D float numpy array; None when the rows have none)."""

    labels: Any
    groups: Any
    scores: Any = None
    features: Any = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MitigationResult:
    """A mitigation's 0/1 predictions for the rows it was asked about; ``baseline`` the same
    learner's predictions without the fairness constraint when it trained one (None when it
    post-processes an existing model); ``details`` what it chose (thresholds, weights...)."""

    predictions: Any
    baseline: Any = None
    details: dict[str, Any] = field(default_factory=dict)


class Mitigator(Plugin, ABC):
    """Makes a classifier's decisions fairer across groups (post-processing or a reduction)."""

    kind = "mitigators"
    # What the rows must carry: "scores" (post-processing a model) or "features" (training one).
    needs: ClassVar[str] = "scores"

    @classmethod
    def kind_problem(cls) -> str | None:
        if cls.needs not in ("scores", "features"):
            return f"{cls.__name__}.needs {cls.needs!r} is not 'scores' or 'features'"
        return None

    @abstractmethod
    def mitigate(self, fit: FairnessRows, apply: FairnessRows, seed: int) -> MitigationResult:
        """Learns the mitigation on ``fit`` and predicts ``apply``; the same seed gives the same
        predictions."""
