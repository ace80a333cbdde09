"""Runs import-linter (the layering contracts in pyproject.toml) over the forgeline distribution.

The top-level folders are mapped into ``forgeline`` by setuptools ``package-dir`` (setup.py), which
grimp, import-linter's graph builder, cannot follow: it walks the folder of the ``forgeline``
package only, so ``forgeline.services`` would not exist for it. This lays the distribution out as
it is installed, with symlinks, in build/import-graph/ and runs lint-imports from there (it puts
its working directory first on sys.path). Arguments are passed on to lint-imports.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "import-graph"


def folders() -> dict[str, str]:
    """setup.py's FOLDERS (package -> folder), read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FOLDERS":
            return ast.literal_eval(node.value)
    raise SystemExit("setup.py has no FOLDERS mapping")


def lay_out() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    package = OUT / "forgeline"
    package.mkdir(parents=True)
    for entry in (ROOT / "forgeline").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in folders().items():
        (package / name.removeprefix("forgeline.")).symlink_to(ROOT / folder)


def main() -> int:
    lay_out()
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    command += ["--config", str(ROOT / "pyproject.toml"), *sys.argv[1:]]
    return subprocess.run(command, cwd=OUT, env={**os.environ, "PYTHONPATH": ""}).returncode


if __name__ == "__main__":
    sys.exit(main())
