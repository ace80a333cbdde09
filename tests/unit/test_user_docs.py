"""The user's documents (README.md, CONTRIBUTING.md, docs/*.md) stay inside the repository and
true to the code: every link resolves to a file (and heading) of this checkout, no path points
above it or at one machine's folders, the README's two commands are the Makefile's and the ones
CI runs, every built-in plugin has its line in docs/plugins.md and every setting its row in
docs/configuration.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from forgeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path above the checkout, or a folder of one machine, written anywhere in the text.
OUTSIDE = re.compile(r"(?<![\w.])\.\./|(?<![\w:/.~-])/(?:work|home|tmp|root|Users|mnt)/")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {_slug(line.lstrip("#")) for line in lines if line.startswith("#")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve_inside_the_checkout(doc: Path):
    text = doc.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        assert not re.match(r"[a-z]+://", target), f"{doc.name}: external link {target}"
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.is_relative_to(REPO), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{doc.name}: no heading #{anchor} in {path}"
    prose = LINK.sub("]()", text)
    found = OUTSIDE.search(prose)
    assert found is None, (
        f"{doc.name}: a path outside the repository: {prose[found.start() :][:60]}"
    )


def test_the_two_commands_are_the_makefiles_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## The two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "\nmake test\n" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for doc in DOCS:
        for target in set(re.findall(r"`make ([\w-]+)`", doc.read_text(encoding="utf-8"))):
            assert re.search(rf"^{target}:", makefile, re.M), f"{doc.name}: no make {target}"


def test_every_built_in_plugin_has_its_line():
    table = {}
    for line in (REPO / "docs" / "plugins.md").read_text(encoding="utf-8").splitlines():
        cells = line.split("|")
        if len(cells) > 3:
            table[cells[1].strip()] = cells[2]
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    kinds = {g.removeprefix("forgeline."): eps for g, eps in groups.items()}
    kinds = {k: v for k, v in kinds.items() if k not in ("services", "commands")}
    kinds = {k: v for k, v in kinds.items() if not k.startswith("pytest")}
    for kind, plugins in kinds.items():
        assert kind in table, f"docs/plugins.md has no row for {kind}"
        for name in plugins:
            assert f"`{name}`" in table[kind], f"docs/plugins.md: {kind} row lacks {name}"


def test_every_setting_has_its_row():
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for field in Settings.model_fields:
        assert f"`FORGELINE_{field.upper()}`" in text, f"FORGELINE_{field.upper()} undocumented"
