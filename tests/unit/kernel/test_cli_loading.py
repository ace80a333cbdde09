"""The `forgeline` command is assembled from the ``forgeline.commands`` entry points (issue 19):
a package's group joins it without a kernel edit, a broken or clashing one is reported with its
distribution and skipped, the root help shows a newcomer `run` first, and `--help` imports no
heavy library. Third-party packages here are real distributions on sys.path, found by
importlib.metadata as an installed one would be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forgeline.cli import build_app
from tests.conftest import REPO

MODULE = '''
import typer

app = typer.Typer(help="Greetings from a third party.")


@app.command("say")
def say(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


def register_run(root: typer.Typer) -> None:
    root.command("run")(say)
'''
ENTRY_POINTS = """
[forgeline.commands]
hello = thirdparty_cmds:app
broken = thirdparty_cmds_missing:app
clash = thirdparty_cmds:register_run
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution "thirdparty-cmds" declaring three command groups: one that
    works, one whose module is missing, one that claims `run`."""
    (tmp_path / "thirdparty_cmds.py").write_text(MODULE)
    info = tmp_path / "thirdparty_cmds-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-cmds\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_package_adds_a_group_and_broken_ones_are_skipped_by_name(third_party):
    root, skipped = build_app()
    assert {(s.name, s.distribution) for s in skipped} == {
        ("broken", "thirdparty-cmds==1.2"),
        ("clash", "thirdparty-cmds==1.2"),
    }
    why = {s.name: s.error for s in skipped}
    assert "ModuleNotFoundError" in why["broken"] and "thirdparty_cmds_missing" in why["broken"]
    assert why["clash"] == "ValueError: command run is already defined"

    said = CliRunner().invoke(root, ["hello", "say", "--name", "you"])
    assert said.exit_code == 0 and said.stdout == "hello you\n"
    # `run` is still the gateway's: the clashing group was taken out whole.
    run_help = CliRunner().invoke(root, ["run", "--help"], env={"COLUMNS": "200"})
    assert "Run a pipeline on the gateway" in run_help.output


def test_the_command_says_what_it_skipped_and_still_works(third_party):
    env = {**os.environ, "PYTHONPATH": str(third_party), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "hello", "say"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello world\n"
    assert "skipped command group broken (thirdparty-cmds==1.2): ModuleNotFoundError" in done.stderr
    assert "skipped command group clash (thirdparty-cmds==1.2)" in done.stderr


def test_the_root_help_shows_pipelines_then_the_stack_then_the_services():
    root, skipped = build_app()
    assert skipped == []
    shown = CliRunner().invoke(root, ["--help"], env={"COLUMNS": "200"}).output
    # A command's row starts at the panel's edge; a wrapped description's row does not.
    commands = [
        line[2:].split(" ")[0] for line in shown.splitlines() if line[:2] == "│ " and line[2] != " "
    ]
    commands = [c for c in commands if c.isalpha()]
    expected = ["run", "validate", "runs", "up", "down", "status", "serve"]
    assert commands[: len(expected)] == expected
    services = commands[len(expected) :]
    assert services == sorted(services)
    assert {"data", "train", "tune", "compress", "memory", "deploy", "fairness", "audit"} <= set(
        services
    )
    panels = [line for line in shown.splitlines() if line.startswith("╭─ ")]
    assert [p.split()[1] for p in panels] == ["Options", "Pipelines", "Local", "Services"]


def test_help_imports_no_heavy_library():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "forgeline", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {"torch", "ray", "transformers", "faiss", "numpy", "pyarrow", "pandas", "sklearn"}
    assert imported & heavy == set()
    assert "forgeline" in imported  # the probe saw the CLI's own imports
