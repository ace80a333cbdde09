"""A tiny real Ray Tune search the searcher and scheduler contract suites drive plugins with
(Ray is imported only when a search runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from forgeline.contracts.searchers import Objective, SearchContext, SearchParameter

SPACE = (
    SearchParameter("x", "uniform", -1.0, 1.0),
    SearchParameter("lr", "loguniform", 1e-4, 1e-1),
    SearchParameter("n", "integer", 1, 4),
    SearchParameter("kind", "choice", values=("a", "b")),
)


def objective_fn(config: dict[str, Any]) -> None:
    """A score per 'epoch' that peaks at x = 0.3, n = 2, kind = b; more epochs help a little."""
    from ray import tune

    base = -((config["x"] - 0.3) ** 2) - 0.1 * abs(config["n"] - 2)
    base -= 0.2 * (config["kind"] != "b")
    started = time.time()
    for epoch in range(1, 5):
        time.sleep(0.05)
        tune.report(
            {
                "score": base + 0.01 * epoch,
                "size": config["n"] * 10.0,
                "started": started,
                "now": time.time(),
            }
        )


SCORE = (Objective("score", "max"),)


CONCURRENT = 2  # the searchers' limit; the cluster has room for more (4 CPUs, 1 per trial)


def context(num_trials: int, objectives=SCORE, seed: int = 0):
    return SearchContext(SPACE, tuple(objectives), num_trials, CONCURRENT, seed)


def most_at_once(trials: list[dict[str, Any]]) -> int:
    """The most trials that ran at the same time (from their first and last report times)."""
    spans = [(t["metrics"]["started"], t["metrics"]["now"]) for t in trials]
    return max(sum(a <= start < b for a, b in spans) for start, _ in spans)


def run(plan, scheduler, storage: Path) -> list[dict[str, Any]]:
    """Runs ``plan`` (a SearchPlan) with ``scheduler``; every trial's config and last result."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(objective_fn, {"cpu": 1}),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            search_alg=plan.search_alg,
            scheduler=scheduler,
            num_samples=plan.num_samples,  # the search algorithm limits the concurrency
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="contract", storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    return [{"config": r.config, "metrics": r.metrics, "error": r.error} for r in grid]
