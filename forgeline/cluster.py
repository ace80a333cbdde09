"""The Ray this process trains on: the cluster at RAY_ADDRESS, else a local head started once.

Every service of one process shares it (in the kernel because training, tuning, compression and
memory all run work on it). Ray is reached inside an operation, never while a
request is being accepted: starting or joining it can take many seconds, which a submit must
not wait out (its caller's deadline would), so the wait is the operation's progress, bounded by
``ray_connect_timeout_seconds`` and failing UNAVAILABLE with the reason.

A local head is started as its own process session under a watchdog (forgeline.raynodes), so
Ray's whole process tree ends with this process: stopped at exit after SIGTERM, taken down by
the watchdog after SIGKILL.

A cluster is joined with a runtime environment that ships forgeline's code, and that of every
installed package plugging into it, so a cluster that has never seen forgeline runs its jobs (its
image needs only forgeline's dependencies: Ray, torch, transformers, peft). ``capacity``
answers "can this run be placed at all?" (when a request is accepted if Ray is already up, else
once its operation has reached Ray), so an impossible request fails fast instead of waiting
forever.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import raynodes
from forgeline.artifacts import sweep_dead
from forgeline.errors import Unavailable, cause_line
from forgeline.logging import get_logger

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.settings import Settings

NAMESPACE = "forgeline"
# Ray options for what must outlive any worker node: a run's driver task (Ray Train puts the run's
# controller on the driver's node) and its metrics sink run on the head, the cluster's one
# lasting member; the workers go wherever there is room.
ON_HEAD = {"resources": {"node:__internal_head__": 0.001}}
ENTRY_POINT_GROUPS = "forgeline."  # the prefix of every group a plugin registers in
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
WAIT_SLICE_S = 0.5  # how often a wait for Ray looks whether its operation should stop
_lock = threading.Lock()
_attempt: Future[None] | None = None  # the connection being made (or made), shared by all
_connector: queue.SimpleQueue | None = None  # attempts, for the thread that makes them
log = get_logger(__name__)


def ensure_ray(
    settings: Settings | None = None, ctx: OperationContext | None = None, at: float = 0.0
) -> None:
    """Connects to Ray once per process; a no-op when Ray is already up. ``RAY_ADDRESS``
    (Ray's own variable: ``host:port`` of a head, or a ``ray://`` client address) names a
    cluster; without it a local head starts, tied to this process (forgeline.raynodes).

    Waits at most ``settings.ray_connect_timeout_seconds`` (``ray.init`` alone waits minutes
    for an address where nothing answers), then raises Unavailable naming the address and that
    setting. Callers share one attempt; one that outlives its waiter still connects the process
    for the next. With ``ctx`` (an operation's), the wait is that operation's progress (at
    fraction ``at``) and ends when it is cancelled or its service stops."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return
    if settings is None:
        from forgeline.settings import Settings

        settings = Settings()
    address = os.environ.get("RAY_ADDRESS") or ""
    where = f"Ray at {address} (RAY_ADDRESS)" if address else "a local Ray head"
    if ctx is not None:
        ctx.progress(at, f"connecting to {where}" if address else f"starting {where}")
    attempt = _attempt_for(settings, address)
    timeout = settings.ray_connect_timeout_seconds
    deadline = time.monotonic() + timeout
    while True:
        try:
            attempt.result(timeout=max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic())))
            break
        except TimeoutError:
            if ctx is not None:
                ctx.check_cancelled()
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"{where} did not answer within {timeout:g} s (setting "
                    "ray_connect_timeout_seconds)",
                    reason="RAY_UNAVAILABLE",
                    metadata={"address": address or "local"},
                ) from None
    if ctx is not None:
        have = capacity()
        ctx.progress(at, f"Ray is up: {have.cpus:g} CPUs, {have.gpus:g} GPUs")


def _attempt_for(settings: Settings, address: str) -> Future[None]:
    """The connection attempt under way, or a new one when there is none or the last one
    failed. Attempts run in one thread of their own that lives as long as the process (so a
    waiter can give up on an attempt): Ray ties the processes a local ``ray.init`` starts to
    the *thread* that started them (PR_SET_PDEATHSIG), and they would die with a shorter-lived
    one."""
    global _attempt, _connector
    with _lock:
        if _attempt is None or _attempt.done():
            _attempt = Future()
            if _connector is None:
                _connector = queue.SimpleQueue()
                threading.Thread(
                    target=_connect_forever, args=(_connector,), name="ray-connect", daemon=True
                ).start()
            _connector.put((_attempt, settings, address))
        return _attempt


def _connect_forever(requests: queue.SimpleQueue) -> None:
    while True:
        _connect(*requests.get())


def _connect(attempt: Future[None], settings: Settings, address: str) -> None:
    import ray
    from ray._private import ray_constants

    # Ray's crash handler would take SIGTERM too, and arm an alarm that aborts the process 3 s
    # later, mid-way through its graceful stop (Ray's RAY_DISABLE_FAILURE_SIGNAL_HANDLER, read
    # when ray is imported; crashes such as SIGSEGV are still reported).
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    try:
        if not ray.is_initialized():
            head = None if address else _start_head(settings)
            target = address or head.address
            options: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
            if not target.startswith("ray://"):
                options["include_dashboard"] = False  # a client connection takes no such option
            env = runtime_env(settings, remote=bool(address))
            try:
                ray.init(address=target, runtime_env=env, **options)
            except BaseException:
                if head is not None:
                    _stop_head(head)
                raise
            if head is not None:
                atexit.register(_stop_head, head)
            log.info(
                "ray_connected",
                address=address or f"local head {target}",
                resources=ray.cluster_resources(),
                shipped=[Path(p).name for p in env.get("py_modules", [])],
            )
        attempt.set_result(None)
    except Unavailable as exc:
        attempt.set_exception(exc)
    except Exception as exc:  # whatever ray.init raised: the reason, as one line
        where = f"Ray at {address} (RAY_ADDRESS)" if address else "the local Ray head"
        reason = cause_line(str(exc), type(exc).__name__)
        attempt.set_exception(
            Unavailable(f"could not connect to {where}: {reason}", reason="RAY_UNAVAILABLE")
        )


def _start_head(settings: Settings) -> raynodes.RayNode:
    """Starts this process's local head, whose session ends with this process: stopped at exit,
    or by its watchdog if this process is killed."""
    head = raynodes.start_head(
        num_cpus=os.cpu_count() or 1,
        log=settings.home.expanduser() / "logs" / "ray.log",
        watch=os.getpid(),
        timeout=settings.ray_connect_timeout_seconds,
    )
    os.environ.update(head.env)  # the head's token, which Ray's driver reads from here
    from ray._raylet import AuthenticationTokenLoader, Config

    # Ray caches its authentication settings once imported: have it read them again (as Ray's
    # own `ray.init` does after it writes a token), the configuration first.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    return head


def _stop_head(head: raynodes.RayNode) -> None:
    """Disconnects, then stops the head (SIGTERM to its session, SIGKILL after a grace)."""
    import ray

    ray.shutdown()
    head.stop()
    shutil.rmtree(head.temp_dir, ignore_errors=True)


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


def capacity(*, connect: bool = True) -> Capacity | None:
    """What the whole cluster has (not what is free now: a run may wait for others). Without
    ``connect``, None when this process has not reached Ray yet (a request being accepted is
    checked now only if that costs no wait; its operation checks once it has reached Ray)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        if not connect:
            return None
        ensure_ray()
        import ray
    total = ray.cluster_resources()
    return Capacity(cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)))


def require_cpus(
    num_workers: int, cpus_per_worker: float, where: str, field: str, *, connect: bool = True
) -> Capacity | None:
    """The cluster's capacity, FailedPrecondition (naming ``field``) when ``num_workers`` x
    ``cpus_per_worker`` CPUs exceed it: such a run could never be placed. Without ``connect``,
    None (nothing checked) when Ray has not been reached yet."""
    from forgeline.errors import FailedPrecondition

    have = capacity(connect=connect)
    if have is None:
        return None
    want = num_workers * cpus_per_worker
    if want > have.cpus:
        raise FailedPrecondition(
            f"{where}: {num_workers} worker(s) x {cpus_per_worker:g} CPUs = {want:g} CPUs, but "
            f"the Ray cluster has {have.cpus:g}",
            reason="CLUSTER_TOO_SMALL",
            metadata={"field": field},
        )
    return have
