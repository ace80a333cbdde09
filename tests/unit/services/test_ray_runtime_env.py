"""What a Ray cluster gets shipped: forgeline's code laid out as Python imports it (the editable
install's mapped folders in place) and a dist-info with its entry points, plus the settings'
own runtime environment."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

from forgeline.cluster import runtime_env
from forgeline.settings import Settings


def test_a_cluster_gets_the_code_as_imported_and_the_entry_points(tmp_path):
    settings = Settings(home=tmp_path, ray_runtime_env={"env_vars": {"A": "1"}, "pip": ["x==1"]})
    env = runtime_env(settings, remote=True)
    assert env["pip"] == ["x==1"]
    assert env["env_vars"] == {"TOKENIZERS_PARALLELISM": "false", "A": "1"}
    shipped = {Path(p).name: Path(p) for p in env["py_modules"]}
    code = shipped["forgeline"]
    [info] = [p for name, p in shipped.items() if name.endswith(".dist-info")]
    # The mapped packages (services/, plugins/, gateway/ in the source tree) sit in place.
    jobs = importlib.util.find_spec("forgeline.services.training.jobs").origin
    assert (code / "services" / "training" / "jobs.py").read_bytes() == Path(jobs).read_bytes()
    recipe = importlib.util.find_spec("forgeline.finetune.recipe").origin
    assert (code / "finetune" / "recipe.py").read_bytes() == Path(recipe).read_bytes()
    assert (code / "plugins" / "finetune" / "lora.py").is_file()
    assert not list(code.rglob("__pycache__"))
    assert "lora = forgeline.plugins.finetune.lora:" in (info / "entry_points.txt").read_text()
    # From the shipped folders alone, the registry finds and loads a plugin the way a worker's
    # does: a Python with the dependencies on a plain path entry (-S: no .pth file runs, so not
    # the editable install's import hook) and the shipped folders first, as Ray puts them.
    probe = (
        "import forgeline, sys\n"
        "from forgeline.registry import PluginRegistry\n"
        "assert forgeline.__file__.startswith(sys.argv[1]), forgeline.__file__\n"
        "print(type(PluginRegistry().create('finetune', 'lora', {}, 'f')).__name__)\n"
    )
    paths = [str(code.parent), str(info.parent), sysconfig.get_paths()["purelib"]]
    done = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {paths!r}\n" + probe, str(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LoraFinetune"


def test_a_local_ray_or_a_cluster_with_forgeline_installed_gets_nothing_shipped(tmp_path):
    assert "py_modules" not in runtime_env(Settings(home=tmp_path), remote=False)
    off = Settings(home=tmp_path, ray_ship_code=False)
    assert "py_modules" not in runtime_env(off, remote=True)
