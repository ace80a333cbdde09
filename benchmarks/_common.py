"""What every benchmark shares: the machine it ran on, how busy other people kept it, and how
goals are judged, written and printed.

Not a benchmark itself (`make bench` runs benchmarks/[a-z]*.py); the scripts import it as
``_common`` (their own folder is first on sys.path when run as scripts).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

SHARED = (Path(__file__).resolve().parent.parent / ".." / "shared" / "data").resolve()
# The UCI sentiment sentences: amazon + imdb, `sentence<TAB>label`.
SENTENCE_FILES = (SHARED / "en" / "amazon_cells_labelled.txt", SHARED / "en" / "imdb_labelled.txt")


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


def judge(goals: list[dict], metrics: dict[str, float]) -> list[dict]:
    """Each goal ({"metric", "op": ">=" or "<=", "target"}) with its measured "value" and "met"."""
    for goal in goals:
        value = metrics[goal["metric"]]
        goal["value"] = value
        goal["met"] = value >= goal["target"] if goal["op"] == ">=" else value <= goal["target"]
    return goals


def write_results(report: dict) -> Path:
    """Writes ``report`` as benchmarks/results/<its "benchmark">.json; returns the path."""
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"{report['benchmark']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def print_summary(report: dict, shown: list[str]) -> None:
    """The ``shown`` metrics of ``report`` (those it has), where all of them are, its notes and
    its goals."""
    metrics = report["metrics"]
    for key in (k for k in shown if k in metrics):
        print(f"{key:<42}{metrics[key]:>12,.4f}")
    print(f"(all {len(metrics)} metrics: benchmarks/results/{report['benchmark']}.json)")
    for note in report.get("notes", []):
        print(f"note: {note}")
    print_goals(report["goals"])


def print_goals(goals: list[dict], digits: int = 3) -> None:
    for goal in goals:
        print(
            f"goal {goal['metric']} {goal['op']} {goal['target']}: "
            f"{'met' if goal['met'] else 'NOT met'} ({goal['value']:.{digits}f})"
        )


def start_ray(cpus: int) -> None:
    """A Ray of the benchmark's own (never someone else's on this machine) with ``cpus`` CPUs."""
    import ray

    ray.init(
        address="local",
        num_cpus=cpus,
        namespace="forgeline",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
    )


def read_sentences(files) -> tuple[list[str], list[int]]:
    """The labelled sentences of ``sentence<TAB>label`` files (label 0 or 1)."""
    texts: list[str] = []
    labels: list[int] = []
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            sentence, sep, label = line.rpartition("\t")
            if sep and label.strip() in ("0", "1") and sentence.strip():
                texts.append(sentence.strip())
                labels.append(int(label))
    return texts, labels


def split_rows(texts: list[str], labels: list, seed: int, eval_rows: int) -> tuple[dict, dict]:
    """(train, eval): {"text": [...], "label": [...]}, shuffled with ``seed``; the last
    ``eval_rows`` are held out."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    labels = [labels[i] for i in order]
    cut = len(texts) - eval_rows
    return (
        {"text": texts[:cut], "label": labels[:cut]},
        {"text": texts[cut:], "label": labels[cut:]},
    )


def load_sentences(seed: int, eval_rows: int) -> tuple[dict, dict]:
    """(train, eval) of the UCI sentences (amazon + imdb), shuffled with ``seed``."""
    return split_rows(*read_sentences(SENTENCE_FILES), seed, eval_rows)


class ServiceProcess:
    """`forgeline serve NAME --port 0` as a real process: stdout carries only its ready line,
    logs (stderr) go to ``<home>/<name>-service.log``. ``env`` adds FORGELINE_* settings to the
    home (FORGELINE_DATA_ROOTS defaults to the home)."""

    def __init__(self, name: str, home: Path, env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        home.mkdir(parents=True, exist_ok=True)
        self.name, self.log_path = name, home / f"{name}-service.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        began = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeline", "serve", name, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env={
                **os.environ,
                "FORGELINE_HOME": str(home),
                "FORGELINE_DATA_ROOTS": str(home),
                **(env or {}),
            },
            cwd=Path(__file__).resolve().parent.parent,
        )
        line = self.proc.stdout.readline().decode()
        if "serving on" not in line:
            self.stop()
            raise RuntimeError(f"{name} service did not start: {line!r}; see {self.log_path}")
        self.address = f"127.0.0.1:{int(line.rsplit(':', 1)[1])}"
        self.start_s = time.perf_counter() - began

    def rss(self) -> int:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self, wait_s: float = 120.0) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
