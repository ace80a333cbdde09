"""The Ray this process trains on: the cluster at RAY_ADDRESS, else a local one started once.

Every service of one process shares it. A cluster is joined with a runtime environment that
ships forgeline's code, and that of every installed package plugging into it, so a cluster that
has never seen forgeline runs its jobs (its image needs only forgeline's dependencies: Ray,
torch, transformers, peft). ``capacity`` answers "can this run be placed at all?" before a
request is accepted, so an impossible request fails fast instead of waiting forever.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import sweep_dead
from forgeline.logging import get_logger

if TYPE_CHECKING:
    from forgeline.settings import Settings

NAMESPACE = "forgeline"
# Ray options for what must outlive any worker node: a run's driver task (Ray Train puts the run's
# controller on the driver's node) and its metrics sink run on the head, the cluster's one
# lasting member; the workers go wherever there is room.
ON_HEAD = {"resources": {"node:__internal_head__": 0.001}}
ENTRY_POINT_GROUPS = "forgeline."  # the prefix of every group a plugin registers in
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
_lock = threading.Lock()
log = get_logger(__name__)


def ensure_ray(settings: Settings | None = None) -> None:
    """Connects to (or starts) Ray once per process; a no-op when Ray is already up.
    ``RAY_ADDRESS`` (Ray's own variable: ``host:port`` of a head, or a ``ray://`` client
    address) names a cluster; without it a local Ray starts in this process."""
    import ray

    with _lock:
        if ray.is_initialized():
            return
        if settings is None:
            from forgeline.settings import Settings

            settings = Settings()
        address = os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
        if not (address or "").startswith("ray://"):
            options["include_dashboard"] = False  # a client connection takes no such option
        env = runtime_env(settings, remote=address is not None)
        ray.init(address=address, runtime_env=env, **options)
        log.info(
            "ray_connected",
            address=address or "local",
            resources=ray.cluster_resources(),
            shipped=[Path(p).name for p in env.get("py_modules", [])],
        )


def runtime_env(settings: Settings, *, remote: bool) -> dict[str, Any]:
    """The job's runtime environment: ``settings.ray_runtime_env`` (pip, env_vars, ...), plus,
    on a cluster (``remote``) and unless ``settings.ray_ship_code`` is off, forgeline's code
    as ``py_modules``. A local Ray shares this process's Python and needs nothing shipped."""
    env: dict[str, Any] = {**settings.ray_runtime_env}
    env["env_vars"] = {"TOKENIZERS_PARALLELISM": "false", **env.get("env_vars", {})}
    if remote and settings.ray_ship_code:
        # One folder per process, removed at exit; those of processes killed before they could
        # remove theirs are swept here.
        root = Path(tempfile.gettempdir(), "forgeline-ship")
        root.mkdir(exist_ok=True)
        sweep_dead(root)
        stage = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        atexit.register(shutil.rmtree, stage, True)
        env["py_modules"] = [*map(str, stage_code(stage)), *env.get("py_modules", [])]
    return env


def stage_code(stage: Path) -> list[Path]:
    """Lays out under ``stage`` forgeline and every installed distribution with an entry point
    in a ``forgeline.*`` group, as Python imports them (an editable install's folders mapped
    where their packages belong), each beside a dist-info holding its METADATA and entry points
    (so the plugin registry discovers them on the workers). Returns the top-level paths: Ray's
    ``py_modules``, each of which Ray puts on the workers' path."""
    shipped: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        plugs = any(ep.group.startswith(ENTRY_POINT_GROUPS) for ep in dist.entry_points)
        if name and (name == "forgeline" or plugs):
            shipped.setdefault(name, dist)  # the first on sys.path wins, as for imports
    for name, dist in sorted(shipped.items()):
        modules = {ep.module for ep in dist.entry_points}
        modules |= {"forgeline"} if name == "forgeline" else set()
        packages = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 2)}
        for package in sorted(packages, key=lambda p: p.count(".")):  # parents first
            spec = importlib.util.find_spec(package)
            target = stage.joinpath(*package.split("."))
            if spec is not None and spec.submodule_search_locations:  # a package's folders
                for folder in spec.submodule_search_locations:
                    shutil.copytree(folder, target, dirs_exist_ok=True, ignore=_NOT_SHIPPED)
            elif spec is not None and spec.origin and "." not in package:  # a lone module
                shutil.copy2(spec.origin, target.with_suffix(".py"))
        info = stage / f"{name.replace('-', '_')}-{dist.version}.dist-info"
        info.mkdir()
        for file in ("METADATA", "entry_points.txt"):
            (info / file).write_text(dist.read_text(file) or "")
    return sorted(stage.iterdir())


@dataclass(frozen=True)
class Capacity:
    cpus: float
    gpus: float


def capacity() -> Capacity:
    """What the whole cluster has (not what is free now: a run may wait for others)."""
    import ray

    ensure_ray()
    total = ray.cluster_resources()
    return Capacity(cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)))


def require_cpus(num_workers: int, cpus_per_worker: float, where: str, field: str) -> Capacity:
    """The cluster's capacity, FailedPrecondition (naming ``field``) when ``num_workers`` x
    ``cpus_per_worker`` CPUs exceed it: such a run could never be placed."""
    from forgeline.errors import FailedPrecondition

    have = capacity()
    want = num_workers * cpus_per_worker
    if want > have.cpus:
        raise FailedPrecondition(
            f"{where}: {num_workers} worker(s) x {cpus_per_worker:g} CPUs = {want:g} CPUs, but "
            f"the Ray cluster has {have.cpus:g}",
            reason="CLUSTER_TOO_SMALL",
            metadata={"field": field},
        )
    return have
