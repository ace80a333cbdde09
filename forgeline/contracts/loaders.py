"""The loaders contract: a Loader turns a source (a file, a folder, URLs) into an Arrow table."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from forgeline.contracts.base import Plugin
from forgeline.errors import ResourceExhausted
from forgeline.paths import PathValidator

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.parsecheck import DataWarning


@dataclass(frozen=True)
class LoadSource:
    """What a loader reads. ``path`` lies inside the configured roots, as found there (a file in
    a folder keeps its own name): open ``inside_roots(path)``, not ``path``."""

    path: Path | None = None
    url: str | None = None
    # Refuse inputs beyond these limits (ResourceExhausted).
    max_rows: int = 50_000_000
    max_bytes: int = 20 * 1024**3
    # The operator's FORGELINE_HTTP_ALLOW: the only non-public hosts a URL loader may reach
    # (forgeline.outbound refuses loopback, link-local, private... addresses by default).
    http_allow: tuple[str, ...] = ()
    # The service's path validator. A loader resolves every file it opens through
    # ``inside_roots`` (the shards a manifest names too), so a symlink cannot lead out.
    paths: PathValidator | None = None

    def inside_roots(self, path: Path, *, named_in: Path | None = None) -> Path:
        """The real path of a file the loader is about to open (``named_in``: the manifest that
        named it); PermissionDenied where it lands outside the data roots. Without a validator
        (a loader used outside a service), the source's own folder is the only root."""
        paths = self.paths
        if paths is None:
            paths = PathValidator([self.path if self.path.is_dir() else self.path.parent])
        return paths.contain(path, "source", named_in=named_in)

    def file_size(self) -> int:
        """The size of ``path``; ResourceExhausted when it is over ``max_bytes``."""
        size = self.path.stat().st_size
        if size > self.max_bytes:
            raise ResourceExhausted(
                f"{self.path}: {size} bytes is over the limit of {self.max_bytes} bytes",
                reason="TOO_MANY_BYTES",
            )
        return size


class Loader(Plugin, ABC):
    """Turns a source into an Arrow table. Raise InvalidArgument naming the line for bad rows."""

    kind = "loaders"
    # File extensions (lowercase, with dot) this loader is chosen for when none is named.
    extensions: ClassVar[tuple[str, ...]] = ()
    # True for loaders whose source is a URL (or a file listing URLs) instead of a data file.
    reads_urls: ClassVar[bool] = False

    @classmethod
    def detects(cls, path: Path) -> bool:
        """Whether this loader recognises ``path`` (a folder layout, say) beyond its extension."""
        return path.is_file() and path.suffix.lower() in cls.extensions

    @abstractmethod
    def load(self, source: LoadSource) -> pa.Table: ...

    def check_parse(self, source: LoadSource, table: pa.Table) -> list[DataWarning]:
        """What looks wrong about ``table`` as a reading of ``source`` that only the loader can
        tell (e.g. fewer rows than the file has lines); called once per source after ``load``.
        The service adds the checks that need only the table. The default finds nothing."""
        return []
