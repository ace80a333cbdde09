"""Regenerates the Python code of proto/ into src/ (or into the folder given) with the protoc that
grpcio-tools bundles, so the generated code matches the protobuf and grpcio it is installed with.

    pip install grpcio-tools && python scripts/generate.py

The generated modules are committed: installing the package runs no code generator. The
google/longrunning and google/api protos the service imports come from googleapis-common-protos,
which ships longrunning's as operations_proto.proto; they are laid out in a temporary folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import google.api
import google.longrunning
import google.rpc
import grpc_tools
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent.parent
PROTOS = HERE / "proto"


def _folder(module) -> Path:
    return Path(next(iter(module.__path__)))


def _lay_out_dependencies(root: Path) -> None:
    for name, module in (("api", google.api), ("rpc", google.rpc)):
        target = root / "google" / name
        target.mkdir(parents=True)
        for proto in _folder(module).glob("*.proto"):
            shutil.copy2(proto, target / proto.name)
    longrunning = root / "google" / "longrunning"
    longrunning.mkdir(parents=True)
    shutil.copy2(
        _folder(google.longrunning) / "operations_proto.proto", longrunning / "operations.proto"
    )


def main(out: Path) -> int:
    with tempfile.TemporaryDirectory() as deps:
        _lay_out_dependencies(Path(deps))
        return protoc.main(
            [
                "protoc",
                f"--proto_path={PROTOS}",
                f"--proto_path={deps}",
                f"--proto_path={Path(grpc_tools.__file__).parent / '_proto'}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *sorted(str(p) for p in PROTOS.rglob("*.proto")),
            ]
        )


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "src"))
