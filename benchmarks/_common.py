"""What every benchmark shares: the machine it ran on, how busy other people kept it, how its
contenders are run (interleaved, repeated: one run of a shared 2-core machine is not a figure),
and how goals are judged (on the median over the repetitions), written and printed.

Not a benchmark itself (`make bench` runs benchmarks/[a-z]*.py); the scripts import it as
``_common`` (their own folder is first on sys.path when run as scripts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs; /proc/stat through psutil). Guest
    time is already inside user time; idle, iowait and steal are not work done here."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


# Every process this benchmark starts inherits this mark: Ray workers (children of a raylet),
# `forgeline serve` processes and what `ray start` daemonizes (re-parented to init, so outside
# our process tree) are all ours, and their CPU time is not "other people's".
_MARK = "FORGELINE_BENCHMARK_RUN"
os.environ.setdefault(_MARK, f"{os.getpid()}-{time.time_ns()}")


def _ours() -> dict[tuple[int, float], float]:
    """CPU seconds of each process of this benchmark: its own tree (plus its reaped children's)
    and every process carrying this run's mark in its environment."""
    import psutil

    me = psutil.Process()
    mark = os.environ[_MARK]
    procs = {p.pid: p for p in [me, *me.children(recursive=True)]}
    for proc in psutil.process_iter():
        if proc.pid in procs:
            continue
        try:
            if proc.environ().get(_MARK) == mark:
                procs[proc.pid] = proc
        except psutil.Error:  # another user's, a zombie, or it ended meanwhile
            continue
    out = {}
    for proc in procs.values():
        try:
            t = proc.cpu_times()
            out[(proc.pid, proc.create_time())] = (
                t.user + t.system + t.children_user + t.children_system
            )
        except psutil.Error:  # it ended between the listing and the reading
            continue
    return out


class ForeignLoad:
    """Share of the machine's CPUs used by processes that are not this benchmark's (ours: this
    process, its subprocesses, the Ray it started and anything carrying its mark) between start
    and share().

    It is the machine's busy time less our tree's, not a sum over the other processes: summing
    theirs counts a child's whole life at the moment its parent reaps it (a share over 100%) and
    misses the short-lived processes that start and end between two looks. Our own processes
    are looked at every ``every_s`` seconds while it measures, so one of ours that starts and
    ends in between (a Ray Train worker of one run) still counts as ours, up to its last look."""

    def __init__(self, every_s: float = 0.5) -> None:
        self._start, self._busy, self._before = time.perf_counter(), _busy_cpu_s(), _ours()
        self._seen: dict[tuple[int, float], float] = dict(self._before)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, args=(every_s,), daemon=True)
        self._watcher.start()

    def _look(self) -> None:
        for key, cpu in _ours().items():
            self._seen[key] = max(cpu, self._seen.get(key, 0.0))

    def _watch(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._look()

    def share(self) -> float:
        self._stop.set()
        self._watcher.join()
        self._look()
        busy = _busy_cpu_s() - self._busy
        ours = sum(max(0.0, v - self._before.get(k, 0.0)) for k, v in self._seen.items())
        capacity = (time.perf_counter() - self._start) * (os.cpu_count() or 1)
        return min(1.0, max(0.0, busy - ours) / capacity) if capacity > 0 else 0.0


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
        goal["met"] = _meets(goal, value)
    return goals


def _meets(goal: dict, value: float) -> bool:
    return value >= goal["target"] if goal["op"] == ">=" else value <= goal["target"]


def write_results(report: dict, path: Path | None = None) -> Path:
    """Writes ``report`` to ``path`` (default benchmarks/results/<its "benchmark">.json: pass
    another path for a smoke run, so the shipped figures stay); returns the path."""
    if path is None:
        path = Path(__file__).resolve().parent / "results" / f"{report['benchmark']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def print_summary(report: dict, shown: list[str], path: Path | None = None) -> None:
    """The ``shown`` metrics of ``report`` (those it has; with their min..max over the
    repetitions), where all of them are, its notes and its goals."""
    metrics, spread = report["metrics"], report.get("spread", {})
    for key in (k for k in shown if k in metrics):
        seen = spread.get(key)
        span = f"  [{seen['min']:,.4f} .. {seen['max']:,.4f}]" if seen else ""
        print(f"{key:<42}{metrics[key]:>12,.4f}{span}")
    where = path or f"benchmarks/results/{report['benchmark']}.json"
    print(f"(all {len(metrics)} metrics: {where})")
    for note in report.get("notes", []):
        print(f"note: {note}")
    print_goals(report["goals"])


def print_goals(goals: list[dict], digits: int = 3) -> None:
    for goal in goals:
        span = (
            f", min {goal['min']:.{digits}f} max {goal['max']:.{digits}f}" if "min" in goal else ""
        )
        held = f"; met in {goal['met_in']} of {goal['repeats']}" if "repeats" in goal else ""
        print(
            f"goal {goal['metric']} {goal['op']} {goal['target']}: "
            f"{'met' if goal['met'] else 'NOT met'} ({goal['value']:.{digits}f}{span}{held})"
        )


# --- repetitions: contenders interleaved, medians with their spread, goals on the median ---------


def bench_options(parser: argparse.ArgumentParser, repeats: int = 3) -> None:
    """``--repeats`` and ``--out``, the same in every benchmark."""

    def at_least_one(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
        return value

    parser.add_argument(
        "--repeats",
        type=at_least_one,
        default=repeats,
        help="repetitions; each runs every contender once, interleaved (A B A B ...); metrics "
        "are the medians over them (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the results JSON (default benchmarks/results/<name>.json)",
    )


@dataclass
class Rounds:
    """What :func:`interleave` measured: ``results[i][name]`` is what contender ``name`` returned
    in repetition i, ``foreign[i][name]`` the CPU share other processes took meanwhile, ``order``
    the contenders in the order they ran."""

    results: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[dict[str, float]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)


def interleave(
    contenders: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    quiet_wait: float = 0.0,
    log: Callable[[str], None] = print,
) -> Rounds:
    """Runs every contender once per repetition, in the given order (A B A B ...), so a slow
    minute of a shared machine lands on all of them alike rather than on whichever ran then.
    Before each run it waits up to ``quiet_wait`` seconds for other processes to go quiet."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    rounds = Rounds()
    for rep in range(repeats):
        results: dict[str, Any] = {}
        foreign: dict[str, float] = {}
        for name, run in contenders.items():
            if quiet_wait > 0:
                wait_quiet(quiet_wait, log)
            load = ForeignLoad()
            results[name] = run()
            foreign[name] = load.share()
            rounds.order.append(name)
            log(f"repetition {rep + 1}/{repeats}: {name} done (others used {foreign[name]:.0%})")
        rounds.results.append(results)
        rounds.foreign.append(foreign)
    return rounds


def summarize(values: Sequence[float]) -> dict:
    """Median, min, max and quartiles (inclusive method) of one metric's per-repetition values."""
    ordered = sorted(values)
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "q1": q1,
        "q3": q3,
        "n": len(ordered),
        "values": list(values),
    }


def fold(rounds: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, dict]]:
    """(metrics, spread) from one metrics dict per repetition: each metric is the median of its
    values (a metric missing from some repetitions is the median of those that have it), and its
    spread is :func:`summarize` of them, for the metrics whose values differ."""
    values: dict[str, list[float]] = {}
    for one in rounds:
        for key, value in one.items():
            values.setdefault(key, []).append(float(value))
    metrics, spread = {}, {}
    for key, seen in values.items():
        metrics[key] = statistics.median(seen)
        if len(set(seen)) > 1:
            spread[key] = summarize(seen)
    return metrics, spread


def noise(foreign: Sequence[Mapping[str, float]]) -> dict:
    """How busy other people kept the machine: their CPU share during each run (repetition ->
    contender -> share), its median and max, and how many runs were over ``QUIET_SHARE``."""
    shares = [share for one in foreign for share in one.values()]
    return {
        "foreign_cpu_share_median": statistics.median(shares) if shares else 0.0,
        "foreign_cpu_share_max": max(shares, default=0.0),
        "disturbed_runs": sum(share >= QUIET_SHARE for share in shares),
        "runs": len(shares),
        "quiet_share": QUIET_SHARE,
        "cores": os.cpu_count(),
        "per_repetition": [dict(one) for one in foreign],
    }


def results(
    benchmark: str,
    machine: dict,
    metrics: dict[str, float],
    goals: list[dict],
    *,
    repeats: int,
    spread: dict[str, dict],
    noise: dict,
    notes: Sequence[str] = (),
    **extra: Any,
) -> dict:
    """The results document (DESIGN.md's schema plus "repeats", "spread" and "noise"), its goals
    judged on the medians in ``metrics``; each goal also says in how many repetitions it held."""
    judge(goals, metrics)
    for goal in goals:
        seen = spread.get(goal["metric"])
        if seen is not None:
            goal["min"], goal["max"] = seen["min"], seen["max"]
            goal["met_in"] = sum(_meets(goal, value) for value in seen["values"])
        else:
            goal["met_in"] = repeats if goal["met"] else 0
        goal["repeats"] = repeats
    notes = list(notes)
    if noise["disturbed_runs"]:
        notes.append(
            f"other processes used over {QUIET_SHARE:.0%} of the CPUs during "
            f"{noise['disturbed_runs']} of {noise['runs']} runs (max "
            f"{noise['foreign_cpu_share_max']:.0%}); goals are judged on the medians"
        )
    return {
        "benchmark": benchmark,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine,
        "repeats": repeats,
        "metrics": metrics,
        "spread": spread,
        "goals": goals,
        "noise": noise,
        "notes": notes,
        **extra,
    }


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
