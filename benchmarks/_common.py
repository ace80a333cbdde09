"""What every benchmark shares: the machine it ran on, how busy other people kept it, and a
forgeline service run in a thread.

Not a benchmark itself (`make bench` runs benchmarks/[a-z]*.py); the scripts import it as
``_common`` (their own folder is first on sys.path when run as scripts).
"""

from __future__ import annotations

import os
import platform
import threading
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


QUIET_SHARE = 0.1  # other processes' CPU share above which a measurement counts as disturbed


def wait_quiet(limit_s: float, log) -> float:
    """Waits (up to ``limit_s``) until other processes use under 10% of the CPUs for 3 s."""
    deadline = time.perf_counter() + limit_s
    warned = False
    while True:
        probe = ForeignLoad()
        time.sleep(3)
        share = probe.share()
        if share < QUIET_SHARE or time.perf_counter() > deadline:
            return share
        if not warned:
            log(f"other processes use {share:.0%} of the CPUs; waiting up to {limit_s:.0f}s")
            warned = True


class ServiceThread:
    """forgeline.server.serve() on its own event loop in a thread, on a free port."""

    def __init__(self, name: str, settings) -> None:
        import asyncio

        self.name, self.settings, self.port = name, settings, 0
        self._asyncio = asyncio
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = self._stop = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from forgeline.server import serve

        async def run() -> None:
            self._loop = self._asyncio.get_running_loop()
            self._stop = self._asyncio.Event()
            await serve(self.name, self.settings, port=0, on_ready=self._ready_at, stop=self._stop)

        try:
            self._asyncio.run(run())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def _ready_at(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def start(self) -> ServiceThread:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
