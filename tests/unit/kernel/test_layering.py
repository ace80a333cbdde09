"""The layering DESIGN.md states holds: the import-linter contracts in pyproject.toml are kept
(`make lint` runs the same script), and what two services share comes from the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("data", "training", "tuning", "compression", "memory", "safety", "serving")

pytest.importorskip("importlinter")


def test_the_import_contracts_are_kept():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lint_imports.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def graph() -> list[tuple[str, str]]:
    """Every direct import inside forgeline, as (importer, imported)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import lint_imports
    finally:
        sys.path.remove(str(REPO / "scripts"))
    lint_imports.lay_out()
    # grimp finds the package the way Python would: the laid-out one must come first.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import grimp, json, sys; g = grimp.build_graph('forgeline', cache_dir=None); "
            "json.dump(sorted(f'{a} {b}' for a in g.modules "
            "for b in g.find_modules_directly_imported_by(a)), sys.stdout)",
        ],
        cwd=lint_imports.OUT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert found.returncode == 0, found.stderr[-2000:]
    return [tuple(edge.split()) for edge in json.loads(found.stdout)]


def test_the_graph_sees_every_service(graph):
    """A service folder without __init__.py is invisible to the linter (memory's was)."""
    modules = {m for edge in graph for m in edge}
    for name in SERVICES:
        assert f"forgeline.services.{name}.servicer" in modules


@pytest.mark.parametrize("service", ["safety", "serving"])
def test_safety_and_serving_use_the_kernel_model_layer_not_another_service(graph, service):
    """Model records and loading, dataset references and policy verdicts come from the kernel
    (forgeline.models, forgeline.datasets, forgeline.policy), not from training or safety."""
    own = f"forgeline.services.{service}"
    crossing = sorted(
        f"{a} -> {b}"
        for a, b in graph
        if a.startswith(own + ".") and b.startswith("forgeline.services.") and not b.startswith(own)
    )
    assert crossing == []


def test_no_service_imports_another_service(graph):
    """Tuning, compression and memory fine-tune through the kernel's engine (forgeline.finetune),
    not through the training service; no service reaches into another."""
    crossing = sorted(
        f"{a} -> {b}"
        for a, b in graph
        for own in [".".join(a.split(".")[:3])]
        if a.startswith("forgeline.services.")
        and b.startswith("forgeline.services.")
        and b != own
        and not b.startswith(own + ".")
    )
    assert crossing == []


def test_the_finetune_engine_holds_no_servicer_code(graph):
    """forgeline.finetune is kernel: the messages it maps come from forgeline.v1, but servers,
    servicers and their gRPC stubs stay in the services (DESIGN: the kernel is small)."""
    engine = {a for a, _ in graph if a.startswith("forgeline.finetune.")}
    assert "forgeline.finetune.recipe" in engine
    outside = sorted(
        f"{a} -> {b}"
        for a, b in graph
        if a in engine and (b.startswith(("forgeline.server", "forgeline.services")) or "grpc" in b)
    )
    assert outside == []
