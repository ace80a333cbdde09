"""The committed forgeline/v1 code is exactly what `buf generate` makes from protos/ now."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "build" / "buf" / "node_modules" / ".bin" / "buf"


def _buf() -> str:
    found = shutil.which("buf")
    if BUF.exists():
        return str(BUF)
    if found:
        return found
    pytest.skip("buf is not installed; `make setup` installs it")


def test_generated_code_matches_protos(tmp_path):
    buf = _buf()
    if not (REPO / "build" / "proto-deps").exists():
        subprocess.run([sys.executable, "scripts/proto_deps.py"], cwd=REPO, check=True)
    subprocess.run([buf, "generate", "-o", str(tmp_path)], cwd=REPO, check=True)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(REPO): p.read_bytes()
        for p in (REPO / "forgeline" / "v1").rglob("*")
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    }
    assert sorted(fresh) == sorted(committed), "generated files differ: run `make proto`"
    stale = [str(path) for path, content in fresh.items() if committed[path] != content]
    assert not stale, f"stale generated code (run `make proto`): {stale}"


def test_buf_lint_is_clean():
    buf = _buf()
    if not (REPO / "build" / "proto-deps").exists():
        subprocess.run([sys.executable, "scripts/proto_deps.py"], cwd=REPO, check=True)
    result = subprocess.run([buf, "lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
