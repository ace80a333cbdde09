"""The versions of Python and the main libraries installed in this process: each artifact's
lineage records them (what made it), and a run's report shows them beside the gateway's own."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from functools import cache
from importlib import metadata

# The distributions recorded, those installed.
LIBRARIES = (
    "forgeline",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "sentence-transformers",
    "scikit-learn",
    "onnxruntime",
    "ray",
    "grpcio",
    "protobuf",
    "pyarrow",
    "numpy",
)


def installed_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """Python's version and each of ``names`` installed here, with its version."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@cache
def _process_versions() -> tuple[tuple[str, str], ...]:
    return tuple(installed_versions().items())


def process_versions() -> dict[str, str]:
    """installed_versions() of LIBRARIES, read once per process (a package upgraded under a
    running service is not what that service runs)."""
    return dict(_process_versions())
