"""A third-party safety-check package certifies itself with forgeline's pytest plugin alone: the
input filter and output rule suites travel in forgeline.testing (issue 19), so a package that
declares checks runs them outside a forgeline checkout, and a check that breaks the contract
fails them.

The packages are written as installed distributions (a module and its .dist-info with the entry
points) into a temporary folder that reaches the pytest subprocess only through PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# Two pytest runs that each import torch and build a tiny classifier: tens of seconds.
pytestmark = pytest.mark.slow

CHECKS = '''
"""Example third-party safety checks."""

import re

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.input_filters import InputFilter
from forgeline.contracts.output_rules import OutputMatcher
from forgeline.contracts.text_checks import TextMatch


class Shouting(InputFilter):
    """Finds words written in capitals, such as SPAM."""

    name = "shouting"

    class Config(PluginConfig):
        min_length: int = Field(default=3, ge=1, description="The shortest word that counts.")

    def find(self, texts):
        pattern = re.compile(r"\\b[A-Z]{%d,}\\b" % self.config.min_length)
        return [[TextMatch(m.start(), m.end(), "shouting") for m in pattern.finditer(t)]
                for t in texts]


class Overlong(OutputMatcher):
    """Matches a whole answer that is longer than a limit."""

    name = "overlong"

    class Config(PluginConfig):
        limit: int = Field(default=200, ge=1, description="The most characters allowed.")

    def find(self, texts):
        return [[TextMatch(0, len(t), "overlong")] if len(t) > self.config.limit else []
                for t in texts]


class Sloppy(InputFilter):
    """Claims a span past the end of every text."""

    name = "sloppy"

    def find(self, texts):
        return [[TextMatch(0, len(t) + 1, "sloppy")] for t in texts]
'''


def install(site: Path, distribution: str, module: str, entry_points: dict[str, str]) -> None:
    """``module`` (the checks above) as distribution ``distribution`` with ``entry_points``
    (``kind: "name = module:Class"``) in ``site``, as pip would leave it."""
    (site / f"{module}.py").write_text(CHECKS)
    info = site / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[forgeline.{kind}]\n{line}\n\n" for kind, line in entry_points.items())
    )


def certify(site: Path, project: Path, distribution: str) -> subprocess.CompletedProcess:
    """pytest with forgeline's contract suites over ``distribution``, run in ``project``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            f"--forgeline-contracts={distribution}",
        ],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_safety_check_package_certifies_itself_and_a_broken_check_fails(tmp_path):
    site, project = tmp_path / "site", tmp_path / "project"
    site.mkdir()
    project.mkdir()
    assert REPO not in project.parents
    (project / "test_forgeline_contracts.py").write_text(
        "from forgeline.testing.suites import *  # noqa: F403\n"
    )
    install(
        site,
        "forgeline-checks-example",
        "checks_example",
        {
            "input_filters": "shouting = checks_example:Shouting",
            "output_rules": "overlong = checks_example:Overlong",
        },
    )
    install(
        site,
        "forgeline-checks-broken",
        "checks_broken",
        {"input_filters": "sloppy = checks_broken:Sloppy"},
    )

    done = certify(site, project, "forgeline-checks-example")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = [line for line in done.stdout.splitlines() if "PASSED" in line]
    # Three contracts per kind, each for this distribution's one check of that kind only.
    assert len(passed) == 6, done.stdout[-3000:]
    assert sum("test_input_filters_" in line and "[shouting]" in line for line in passed) == 3
    assert sum("test_output_rules_" in line and "[overlong]" in line for line in passed) == 3

    broken = certify(site, project, "forgeline-checks-broken")
    assert broken.returncode == 1, broken.stdout[-3000:] + broken.stderr[-2000:]
    assert "test_input_filters_finds_well_formed_matches_in_any_text[sloppy] FAILED" in (
        broken.stdout
    ), broken.stdout[-3000:]
