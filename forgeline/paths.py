"""The one path validator: every path a client sends is resolved here, inside configured roots.

Refused: empty or over-long paths, NUL bytes, any ``..`` component, anything that resolves
(following symlinks) outside every root, and anything inside forgeline's own stores
(FORGELINE_HOME, the artifact folder) even where a root contains them: artifacts are reached by
id, never by path. Relative paths are taken relative to the first root, and ``~`` is a plain
character: expanding a client's ``~user`` would name the server's accounts.

Files a loader finds by itself (walking a folder, the shards a manifest names) go through
``contain`` too, so a symlink inside a root cannot lead out of it. Messages name a server path
relative to its root ("data root #1: sub/a.csv"), never the server's absolute paths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from forgeline.errors import (
    FieldViolation,
    ForgelineError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    excerpt,
)

if TYPE_CHECKING:
    from forgeline.settings import Settings

# PATH_MAX on Linux: a longer path names no file, and a 5 MB one only costs memory and logs.
MAX_PATH_CHARS = 4096
_STORE = "forgeline's own store"


class PathValidator:
    def __init__(self, roots: Sequence[Path], *, stores: Sequence[Path] = ()) -> None:
        """``roots``: where client paths may lead; ``stores``: places inside them that no
        client path may reach (forgeline's home and artifact folder)."""
        if not roots:
            raise ValueError("at least one root is required")
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.stores = [Path(s).expanduser().resolve() for s in stores]

    @classmethod
    def from_settings(cls, settings: Settings) -> PathValidator:
        """The data roots of ``settings``, with FORGELINE_HOME and the artifact folder (a local
        FORGELINE_ARTIFACT_URI included) refused even where a data root holds them."""
        from forgeline import storage

        stores = [settings.home, settings.artifacts_dir]
        if settings.artifact_uri and not storage.is_remote(settings.artifact_uri):
            stores.append(Path(storage.Location(settings.artifact_uri).open()[1]))
        return cls(settings.roots, stores=stores)

    def resolve(self, raw: str, field: str, *, must_exist: bool = True) -> Path:
        """The real path of ``raw``, or an error that names ``field`` and what was wrong."""
        if not raw or not raw.strip():
            raise InvalidArgument.for_field(field, "a path is required")
        if len(raw) > MAX_PATH_CHARS:
            raise InvalidArgument.for_field(
                field, f"path is {len(raw):,} characters; at most {MAX_PATH_CHARS:,}"
            )
        if "\x00" in raw:
            raise InvalidArgument.for_field(field, "path contains a NUL byte")
        candidate = Path(raw)
        if ".." in candidate.parts:
            raise InvalidArgument.for_field(
                field, f"path {excerpt(raw)} contains '..'; give a path inside the data roots"
            )
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        real = self._checked(candidate, field, f"path {excerpt(raw)}")
        try:
            exists = real.exists()
        except OSError as exc:  # e.g. a component longer than NAME_MAX
            raise InvalidArgument.for_field(
                field, f"path {excerpt(raw)} cannot be used: {exc.strerror}"
            ) from None
        if must_exist and not exists:
            raise NotFound(
                f"{field}: {self.display(candidate)} does not exist",
                reason="PATH_NOT_FOUND",
                metadata={"field": field},
            )
        return real

    def contain(self, path: Path, field: str, *, named_in: Path | None = None) -> Path:
        """The real path of ``path``, a path the server found (a file in a folder being walked,
        a shard the manifest ``named_in`` names); PermissionDenied where it leads out of the
        roots, naming the path, or the manifest, relative to its root."""
        named = f"{self.display(named_in)} names a file that" if named_in else self.display(path)
        return self._checked(path, field, named)

    def walk(self, folder: Path, field: str) -> list[Path]:
        """Every file below ``folder``, sorted, as found there (not resolved, so a file keeps
        its own name). Hidden names are skipped and symlinked folders not descended; any other
        entry leading out of the roots refuses the whole folder (PermissionDenied)."""
        files = []
        for entry in sorted(folder.rglob("*")):
            if entry.name.startswith("."):
                continue
            self.contain(entry, field)
            if entry.is_file():
                files.append(entry)
        return files

    def display(self, path: Path) -> str:
        """How a message names a server path: relative to the root holding it."""
        holding = [(i, root) for i, root in enumerate(self.roots, 1) if path.is_relative_to(root)]
        if not holding:
            return path.name or "a path outside the data roots"
        number, root = max(holding, key=lambda pair: len(pair[1].parts))
        inside = path.relative_to(root).as_posix()
        return f"data root #{number}" + (f": {inside}" if inside != "." else "")

    def redact(self, text: str) -> str:
        """``text`` (an error a loader wrote) with every absolute root or store path replaced by
        its name, longest first so a store inside a root is named as the store."""
        places = [(root, f"data root #{i}") for i, root in enumerate(self.roots, 1)]
        places += [(store, _STORE) for store in self.stores]
        for place, name in sorted(places, key=lambda pair: -len(str(pair[0]))):
            if len(place.parts) > 1:  # a root of "/" would rewrite every slash
                text = text.replace(f"{place}/", f"{name}: ").replace(str(place), name)
        return text

    def redact_error(self, error: ForgelineError) -> ForgelineError:
        """``error`` with ``redact`` applied to its message and field violations (in place)."""
        error.message = self.redact(error.message)
        error.args = (error.message,)
        error.violations = [
            FieldViolation(v.field, self.redact(v.description)) for v in error.violations
        ]
        return error

    def _checked(self, path: Path, field: str, named: str) -> Path:
        try:
            real = path.resolve(strict=False)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            raise InvalidArgument.for_field(
                field, f"{named} cannot be resolved (a symlink loop?)"
            ) from None
        if any(real.is_relative_to(store) for store in self.stores):
            raise PermissionDenied(
                f"{field}: {named} leads into {_STORE} (FORGELINE_HOME); artifacts are reached "
                "by id, not by path",
                reason="PATH_IN_STORE",
                metadata={"field": field},
            )
        if not any(real.is_relative_to(root) for root in self.roots):
            raise PermissionDenied(
                f"{field}: {named} resolves outside the allowed roots; set "
                "FORGELINE_DATA_ROOTS to allow it",
                reason="PATH_OUTSIDE_ROOTS",
                metadata={"field": field},
            )
        return real


def folder_name(name: str) -> str:
    """``name`` (an operation name such as "operations/3f2a...") as one safe path component."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)
