"""The Ray this process trains on: the cluster at RAY_ADDRESS, else a local one started once.

Every service of one process shares it. ``capacity`` answers "can this run be placed at all?"
before a request is accepted, so an impossible request fails fast instead of waiting forever.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from forgeline.logging import get_logger

NAMESPACE = "forgeline"
_lock = threading.Lock()
log = get_logger(__name__)


def ensure_ray() -> None:
    """Connects to (or starts) Ray once per process; a no-op when Ray is already up."""
    import ray

    with _lock:
        if ray.is_initialized():
            return
        address = os.environ.get("RAY_ADDRESS") or None
        ray.init(
            address=address,
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
        log.info("ray_connected", address=address or "local", resources=ray.cluster_resources())


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
