"""What every benchmark shares: the machine it ran on, and how busy other people kept it.

Not a benchmark itself (`make bench` runs benchmarks/[a-z]*.py); the scripts import it as
``_common`` (their own folder is first on sys.path when run as scripts).
"""

from __future__ import annotations

import os
import platform
import time


def machine(**versions: str | None) -> dict:
    """CPU model and the flags that decide bf16 speed, cores, Python, platform, plus ``versions``
    (library name -> version) of what the benchmark measures."""
    cpu, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
    }


def _others() -> dict[tuple[int, float], float]:
    """CPU seconds (own and reaped children) of every process outside this benchmark's tree."""
    import psutil

    me = psutil.Process()
    mine = {me.pid} | {p.pid for p in me.children(recursive=True)}
    out = {}
    for proc in psutil.process_iter(["pid", "create_time", "cpu_times"]):
        info = proc.info
        if info["pid"] in mine or info["cpu_times"] is None:
            continue
        t = info["cpu_times"]
        out[(info["pid"], info["create_time"])] = (
            t.user + t.system + t.children_user + t.children_system
        )
    return out


class ForeignLoad:
    """Share of the machine's CPUs used by processes outside this benchmark's process tree
    (ours: this process, its subprocesses and the Ray it started) between start and share()."""

    def __init__(self) -> None:
        self._start, self._before = time.perf_counter(), _others()

    def share(self) -> float:
        after = _others()
        used = sum(max(0.0, v - self._before.get(k, 0.0)) for k, v in after.items())
        return used / ((time.perf_counter() - self._start) * (os.cpu_count() or 1))
