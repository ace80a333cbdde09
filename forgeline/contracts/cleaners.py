"""The cleaners contract: a Cleaner maps an Arrow table to a cleaner one (fewer rows, changed
text, or more rows)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from forgeline.contracts.base import Plugin, never_cancelled

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.contracts.text_checks import SafetyContext
    from forgeline.registry import PluginRegistry


@dataclass(frozen=True)
class CleanContext:
    """Which columns hold the text and the label ("" when none), and the seed for sampling.

    Long cleaners call ``check_cancelled()`` now and then; it raises when the operation was
    cancelled or the service is stopping.
    """

    text_column: str = "text"
    label_column: str = ""
    seed: int = 0
    check_cancelled: Callable[[], None] = never_cancelled
    # For cleaners that run another kind's plugins (safety_filter runs an input filter): the
    # service's registry (its allow-list applies) and model lookup. None outside a service.
    registry: PluginRegistry | None = None
    safety: SafetyContext | None = None
    # The other datasets the cleaner named (Cleaner.references), by the reference it gave.
    datasets: Mapping[str, ReferencedDataset] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferencedDataset:
    """Another dataset a cleaner reads (to compare against): its resolved id, rows and columns."""

    id: str
    table: pa.Table
    text_column: str
    label_column: str


@dataclass
class CleanResult:
    """A cleaner's output: the new table, a few examples of dropped or changed rows, numbers."""

    table: pa.Table
    # (text, reason) pairs, at most a handful.
    examples: list[tuple[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Cleaner(Plugin, ABC):
    """Maps an Arrow table to an Arrow table (fewer rows, changed text, or more rows)."""

    kind = "cleaners"
    MAX_EXAMPLES: ClassVar[int] = 5

    def references(self) -> dict[str, str]:
        """Other datasets this cleaner reads, as {config field: dataset id, name or
        name@version}. The service checks each exists before the operation starts (an error
        names the field), records them in the result's lineage and hands them over in
        ``CleanContext.datasets``. The default reads none."""
        return {}

    @abstractmethod
    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult: ...
