"""The tracker contract, over every tracker to certify (fixture ``trackers_plugin``).

Running this suite certifies a tracker: it is found through its entry point, exactly as the
training service finds it. A tracker whose defaults cannot run (say, they need a server) overrides
the ``contract_config`` classmethod to return the config (a dict) to test with. A tracker whose
library is optional and not installed raises ImportError, or FailedPrecondition with reason
TRACKER_LIBRARY_MISSING, from ``start``; it is skipped here, except forgeline's own tensorboard
and mlflow, whose libraries the ``trackers`` extra (and ``dev``) always installs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from forgeline.contracts.trackers import Tracker, TrackerRun
from forgeline.errors import FailedPrecondition
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_a_successful_run_writes_only_into_its_output_dir",
    "test_a_run_that_stops_early_still_finishes",
    "test_a_run_finished_before_any_metric",
    "test_two_runs_at_once_in_one_process",
]

# forgeline's own trackers that must run wherever forgeline[trackers] is installed: a missing
# library fails them instead of skipping. wandb stays optional (it may be left out of an install).
ALWAYS_INSTALLED = {"tensorboard", "mlflow"}

PARAMS = {
    "model": "bert-tiny",
    "learning_rate": 5e-5,
    "epochs": 2,
    "bf16": False,
    "seed": None,
    "strategy": "lora",
    "strategy.r": 8,
    "strategy.target_modules": ["query", "value"],
    "notes": "x" * 10_000,  # over MLflow's 6000-character limit for a param value
    "weird key: ü/ä|*": "value",
}


def tracker_run(folder: Path, run_id: str = "operations/train-1") -> TrackerRun:
    return TrackerRun(run_id=run_id, name="bert-tiny-reviews", output_dir=folder, params=PARAMS)


def start(tracker: Tracker, run: TrackerRun) -> None:
    """``tracker.start(run)``, or a skip when the tracker's optional library is not installed."""
    try:
        tracker.start(run)
    except (ImportError, FailedPrecondition) as exc:
        missing = isinstance(exc, ImportError) or exc.reason == "TRACKER_LIBRARY_MISSING"
        builtin = type(tracker).__module__.startswith("forgeline.")
        if missing and not (builtin and tracker.name in ALWAYS_INSTALLED):
            pytest.skip(f"{tracker.name}: its library is not installed: {exc}")
        raise


def test_fulfils_the_kernel_contract(trackers_plugin):
    assert contract_problem("trackers", trackers_plugin.name, trackers_plugin) is None
    assert trackers_plugin.description(), "the docstring's first paragraph is its description"


def test_config_schema_is_json_with_every_field_described(trackers_plugin):
    schema = json.loads(json.dumps(config_schema(trackers_plugin)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValueError):
        trackers_plugin.Config.model_validate({"no_such_field": 1})


def test_a_successful_run_writes_only_into_its_output_dir(
    trackers_plugin, tmp_path, forgeline_empty_cwd
):
    out = tmp_path / "runs" / "train-1"  # not there yet: the tracker creates it
    tracker = contract_instance(trackers_plugin)
    start(tracker, tracker_run(out))
    for step in range(1, 6):
        tracker.log_metrics({"loss": 1.0 / step, "learning_rate": 5e-5}, step)
    tracker.log_metrics({"eval/accuracy": 0.75, "eval/loss": 0.6}, 5)
    tracker.finish("succeeded", {"eval/accuracy": 0.75, "eval/loss": 0.6})
    assert out.is_dir() and any(out.iterdir()), "nothing was written into output_dir"
    assert not os.listdir(forgeline_empty_cwd), (
        f"wrote into the current directory: {os.listdir(forgeline_empty_cwd)}"
    )


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_run_that_stops_early_still_finishes(
    trackers_plugin, tmp_path, forgeline_empty_cwd, status
):
    tracker = contract_instance(trackers_plugin)
    start(tracker, tracker_run(tmp_path / "out"))
    tracker.log_metrics({"loss": math.nan}, 1)  # a diverged run logs NaN before it fails
    tracker.finish(status, {})


def test_a_run_finished_before_any_metric(trackers_plugin, tmp_path, forgeline_empty_cwd):
    tracker = contract_instance(trackers_plugin)
    start(tracker, tracker_run(tmp_path / "out"))
    tracker.finish("cancelled", {})


def test_two_runs_at_once_in_one_process(trackers_plugin, tmp_path, forgeline_empty_cwd):
    first, second = contract_instance(trackers_plugin), contract_instance(trackers_plugin)
    start(first, tracker_run(tmp_path / "a", "operations/a"))
    start(second, tracker_run(tmp_path / "b", "operations/b"))
    for step in range(1, 4):
        first.log_metrics({"loss": 1.0 / step}, step)
        second.log_metrics({"loss": 2.0 / step}, step)
    second.finish("failed", {"loss": 2.0 / 3})
    first.finish("succeeded", {"loss": 1.0 / 3})
