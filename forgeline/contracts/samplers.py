"""The samplers contract (the memory service): a Sampler chooses the memory samples replayed
beside new data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeline.contracts.base import Plugin


@dataclass(frozen=True)
class ReplayPool:
    """The samples a replay sampler chooses from, in the order they were added: their labels,
    their embeddings (a float32 numpy array, one row per sample, L2-normalized) and when they
    were added (seconds since the epoch)."""

    labels: Sequence[str]
    vectors: Any
    timestamps: Sequence[float]

    def __len__(self) -> int:
        return len(self.labels)


class Sampler(Plugin, ABC):
    """Chooses the memory samples replayed beside new data (continual learning)."""

    kind = "samplers"

    @abstractmethod
    def sample(self, pool: ReplayPool, k: int, seed: int) -> list[int]:
        """``min(k, len(pool))`` distinct positions in ``pool``; the same seed gives the same
        positions."""
