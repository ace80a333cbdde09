"""The benchmark harness (benchmarks/_common.py): contenders interleaved over repetitions, the
median and spread of each metric, goals judged on the median, the results document's shape, and
a foreign CPU share that stays a share."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def common():
    """benchmarks/_common.py, which the scripts import from their own folder."""
    name = "forgeline_benchmarks_common"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]


def test_contenders_run_interleaved_once_per_repetition(common):
    calls: list[str] = []

    def contender(name: str):
        def run() -> str:
            calls.append(name)
            return f"{name}{calls.count(name)}"

        return run

    rounds = common.interleave(
        {"a": contender("a"), "b": contender("b")}, repeats=3, log=lambda _: None
    )
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert rounds.order == calls
    assert rounds.results == [
        {"a": "a1", "b": "b1"},
        {"a": "a2", "b": "b2"},
        {"a": "a3", "b": "b3"},
    ]
    assert [sorted(one) for one in rounds.foreign] == [["a", "b"]] * 3
    assert all(0.0 <= share <= 1.0 for one in rounds.foreign for share in one.values())


def test_interleave_refuses_no_repetitions(common):
    with pytest.raises(ValueError, match="repeats"):
        common.interleave({"a": lambda: 1}, repeats=0, log=lambda _: None)


def test_fold_gives_medians_and_the_spread_of_what_varies(common):
    metrics, spread = common.fold(
        [
            {"ratio": 0.90, "steps": 30, "only_some": 1.0},
            {"ratio": 1.10, "steps": 30},
            {"ratio": 0.95, "steps": 30, "only_some": 3.0},
            {"ratio": 0.70, "steps": 30},
        ]
    )
    assert metrics == {"ratio": pytest.approx(0.925), "steps": 30, "only_some": 2.0}
    assert "steps" not in spread  # the same in every repetition: nothing to spread
    ratio = spread["ratio"]
    assert (ratio["min"], ratio["max"], ratio["n"]) == (0.70, 1.10, 4)
    assert ratio["median"] == pytest.approx(0.925)
    assert ratio["q1"] == pytest.approx(0.85) and ratio["q3"] == pytest.approx(0.9875)
    assert ratio["values"] == [0.90, 1.10, 0.95, 0.70]  # in repetition order


def test_goals_are_judged_on_the_median_not_on_a_lucky_run(common):
    metrics, spread = common.fold([{"ratio": 0.80}, {"ratio": 0.99}, {"ratio": 0.85}])
    goals = [
        {"metric": "ratio", "op": ">=", "target": 0.95},
        {"metric": "ratio", "op": "<=", "target": 0.9},
    ]
    noise = common.noise([{"a": 0.02, "b": 0.5}, {"a": 0.0, "b": 0.01}, {"a": 0.03, "b": 0.04}])
    report = common.results(
        "demo", {"cores": 2}, metrics, goals, repeats=3, spread=spread, noise=noise, notes=["n"]
    )
    at_least, at_most = report["goals"]
    assert at_least["value"] == 0.85 and at_least["met"] is False  # 0.99 alone would have met it
    assert (at_least["min"], at_least["max"], at_least["met_in"]) == (0.80, 0.99, 1)
    assert at_most["met"] is True and at_most["met_in"] == 2
    assert report["noise"]["disturbed_runs"] == 1 and report["noise"]["runs"] == 6
    assert report["noise"]["foreign_cpu_share_max"] == 0.5
    assert report["notes"][0] == "n" and "1 of 6 runs" in report["notes"][1]


def test_results_document_keeps_the_design_schema_and_writes_where_told(common, tmp_path):
    metrics, spread = common.fold([{"ratio": 1.0, "steps": 3}, {"ratio": 1.2, "steps": 3}])
    report = common.results(
        "demo",
        common.machine(),
        metrics,
        [{"metric": "ratio", "op": ">=", "target": 1.0}],
        repeats=2,
        spread=spread,
        noise=common.noise([{"a": 0.0}, {"a": 0.0}]),
    )
    path = common.write_results(report, tmp_path / "smoke" / "demo.json")
    loaded = json.loads(path.read_text())
    assert {"benchmark", "machine", "metrics", "goals", "repeats", "spread", "noise"} <= set(loaded)
    assert loaded["benchmark"] == "demo" and loaded["repeats"] == 2
    assert all(isinstance(v, (int, float)) for v in loaded["metrics"].values())
    for goal in loaded["goals"]:
        assert {"metric", "op", "target", "value", "met"} <= set(goal)
    assert loaded["goals"][0]["value"] == pytest.approx(1.1)
    assert set(loaded["spread"]) == {"ratio"}
    assert loaded["noise"]["per_repetition"] == [{"a": 0.0}, {"a": 0.0}]


def test_bench_options_parse_repeats_and_out(common, tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    common.bench_options(parser, repeats=3)
    assert parser.parse_args([]).repeats == 3 and parser.parse_args([]).out is None
    args = parser.parse_args(["--repeats", "2", "--out", str(tmp_path / "x.json")])
    assert args.repeats == 2 and args.out == tmp_path / "x.json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--repeats", "0"])


def _wait_for(path: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear in {limit_s}s"
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_foreign_process_reaping_a_busy_child_is_not_counted_as_its_whole_life(common, tmp_path):
    """A process outside the benchmark's tree reaps a child that burnt CPU before the window:
    summing other processes' CPU times would count that child's whole life at once (a share far
    over 100%); the share must stay what the machine did during the window."""
    burn_s = 0.6
    # our child forks the "foreign" process and exits, so it is reparented out of our tree
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked processes
        try:
            if os.fork() == 0:
                child = os.fork()
                if child == 0:
                    while os.times().user + os.times().system < burn_s:
                        pass
                    (tmp_path / "burnt").touch()
                    os._exit(0)
                deadline = time.monotonic() + 120
                while not (tmp_path / "go").exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.waitpid(child, 0)
                (tmp_path / "reaped").touch()
            os._exit(0)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    # burning 0.6 CPU-seconds takes longer on a loaded machine: bound it by the work's size
    _wait_for(tmp_path / "burnt", limit_s=60 * burn_s)
    load = common.ForeignLoad()
    (tmp_path / "go").touch()
    _wait_for(tmp_path / "reaped", limit_s=30)
    share = load.share()
    assert 0.0 <= share <= 1.0


@pytest.mark.parametrize("marked", [True, False])
def test_processes_the_benchmark_started_outside_its_tree_are_its_own(common, tmp_path, marked):
    """A daemonized node of the benchmark's own (`ray start` double-forks: re-parented to init,
    outside the benchmark's process tree) carries the run's mark and its CPU time counts as
    ours; a process without the mark is other people's load."""
    import signal
    import subprocess

    env = dict(os.environ)
    if not marked:
        env.pop("FORGELINE_BENCHMARK_RUN", None)
    pid_file = tmp_path / "pid"
    subprocess.run(["sh", "-c", f'(sleep 60 & echo $! > "{pid_file}")'], env=env, check=True)
    _wait_for(pid_file, limit_s=30)
    pid = int(pid_file.read_text().strip() or 0)
    try:
        assert pid > 0
        assert (pid in {p for p, _ in common._ours()}) is marked
    finally:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_short_lived_process_of_the_benchmark_is_its_own_though_it_ended_in_the_window(
    common, tmp_path
):
    """A Ray Train worker of one run starts and ends inside the window, outside the tree: looked
    at only at the window's ends it would be invisible, and its CPU other people's load. The
    same burner without the run's mark is other people's load."""
    import subprocess

    burn = "import os\nwhile sum(os.times()[:2]) < 1.0: pass\n"

    def share_with(marked: bool, name: str) -> float:
        env = dict(os.environ)
        if not marked:
            env.pop("FORGELINE_BENCHMARK_RUN", None)
        done = tmp_path / name
        load = common.ForeignLoad(every_s=0.05)
        script = f'({sys.executable} -c "{burn}"; touch "{done}") &'
        subprocess.run(["sh", "-c", script], env=env, check=True)  # detached, as ray's daemons
        _wait_for(done, limit_s=60)
        return load.share()

    ours, theirs = share_with(True, "ours"), share_with(False, "theirs")
    # 1 CPU-second over a window of a few seconds on every core: the unmarked burner is a
    # visible share; the marked one is ours but for its last 0.05 s between two looks.
    assert theirs - ours > 0.1, (ours, theirs)
