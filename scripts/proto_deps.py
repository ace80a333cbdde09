"""Lay out the third-party .proto files buf needs, from the installed Python packages.

buf cannot reach its schema registry here, so the google/api, google/rpc and google/longrunning
sources come from googleapis-common-protos (which ships longrunning as operations_proto.proto).
The well-known types are built into buf. Output: build/proto-deps/ (git-ignored).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import google.api
import google.longrunning
import google.rpc

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "proto-deps"


def _package_dir(module) -> Path:
    return Path(next(iter(module.__path__)))


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    for package, module in (("api", google.api), ("rpc", google.rpc)):
        target = OUT / "google" / package
        target.mkdir(parents=True)
        for proto in _package_dir(module).glob("*.proto"):
            shutil.copy2(proto, target / proto.name)
    longrunning = OUT / "google" / "longrunning"
    longrunning.mkdir(parents=True)
    source = _package_dir(google.longrunning) / "operations_proto.proto"
    shutil.copy2(source, longrunning / "operations.proto")
    print(f"proto deps laid out in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
