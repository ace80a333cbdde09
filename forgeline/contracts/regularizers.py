"""The regularizers contract (continual learning): a Regularizer keeps a model near what it knew
while it learns new data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline.contracts.base import Plugin


@dataclass(frozen=True)
class RegularizerContext:
    """What a regularizer sees before an update trains: ``old_batches()`` yields the old
    task's rows as model inputs with their ``labels`` (EWC's Fisher information is estimated on
    them); ``previous`` is the folder of the state the previous update saved (online EWC keeps
    accumulating it), or None for the first update."""

    old_batches: Callable[[], Iterable[Mapping[str, Any]]]
    previous: Path | None = None


class Regularizer(Plugin, ABC):
    """Keeps a model near what it knew while it learns new data (continual learning): a penalty
    added to the training loss at every step."""

    kind = "regularizers"

    @abstractmethod
    def prepare(self, model: Any, ctx: RegularizerContext) -> None:
        """Called once, before training, with the model as it is (the weights to stay near)."""

    @abstractmethod
    def penalty(self, model: Any) -> Any:
        """The penalty of the model's current weights: a scalar tensor (0 for none)."""

    def save(self, folder: Path) -> None:
        """Writes what the next update needs into ``folder`` (safetensors / JSON, never a
        pickle). The default keeps nothing."""
