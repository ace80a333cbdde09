"""The augmenters contract: an Augmenter generates new rows from a table."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forgeline.contracts.base import Plugin, never_cancelled

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class AugmentContext:
    """The text and label columns, the seed, and the cancellation check (see CleanContext)."""

    text_column: str = "text"
    label_column: str = ""
    seed: int = 0
    check_cancelled: Callable[[], None] = never_cancelled


class Augmenter(Plugin, ABC):
    """Generates new rows from a table; returns only the new rows, with the input's schema."""

    kind = "augmenters"

    @abstractmethod
    def augment(self, table: pa.Table, ctx: AugmentContext) -> pa.Table: ...
