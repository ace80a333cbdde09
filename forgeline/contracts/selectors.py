"""The selectors contract (continual learning): a Selector chooses which new rows an update
learns from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeline.contracts.base import Plugin


@dataclass(frozen=True)
class ScoredRows:
    """New rows as the current model sees them: its class probabilities (a float numpy array,
    one row per example, columns in class-index order) and each row's true class index."""

    probabilities: Any
    labels: Sequence[int]

    def __len__(self) -> int:
        return len(self.labels)


class Selector(Plugin, ABC):
    """Chooses which new rows an update learns from (e.g. those the model is unsure or wrong
    about)."""

    kind = "selectors"

    @abstractmethod
    def select(self, rows: ScoredRows) -> list[int]:
        """The positions of the rows kept, ascending."""
