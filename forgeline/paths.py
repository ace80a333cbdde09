"""The one path validator: every path a client sends is resolved here, inside configured roots.

Refused: empty paths, NUL bytes, any ``..`` component, and anything that resolves (following
symlinks) outside every root. Relative paths are taken relative to the first root.
"""

from __future__ import annotations

import re
from pathlib import Path

from forgeline.errors import InvalidArgument, NotFound, PermissionDenied


class PathValidator:
    def __init__(self, roots: list[Path]) -> None:
        if not roots:
            raise ValueError("at least one root is required")
        self.roots = [Path(r).expanduser().resolve() for r in roots]

    def resolve(self, raw: str, field: str, *, must_exist: bool = True) -> Path:
        """The real path of ``raw``, or an error that names ``field`` and what was wrong."""
        if not raw or not raw.strip():
            raise InvalidArgument.for_field(field, "a path is required")
        if "\x00" in raw:
            raise InvalidArgument.for_field(field, "path contains a NUL byte")
        candidate = Path(raw).expanduser()
        if ".." in candidate.parts:
            raise InvalidArgument.for_field(
                field, f"path {raw!r} contains '..'; give a path inside the data roots"
            )
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        real = candidate.resolve(strict=False)
        if not any(real.is_relative_to(root) for root in self.roots):
            raise PermissionDenied(
                f"{field}: path {raw!r} resolves to {real}, outside the allowed roots "
                f"({', '.join(map(str, self.roots))}); set FORGELINE_DATA_ROOTS to allow it",
                reason="PATH_OUTSIDE_ROOTS",
                metadata={"field": field},
            )
        if must_exist and not real.exists():
            raise NotFound(
                f"{field}: {raw!r} does not exist (looked at {real})",
                reason="PATH_NOT_FOUND",
                metadata={"field": field},
            )
        return real


def folder_name(name: str) -> str:
    """``name`` (an operation name such as "operations/3f2a...") as one safe path component."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)
