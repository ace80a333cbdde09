"""The tuning service's pure parts: applying sampled values, the most epochs a trial reports,
the Pareto front, parameter importances and the trial book."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from forgeline.datasets import DatasetRef
from forgeline.finetune.spec import ModelChoice, TrainSpec
from forgeline.registry import Objective, PluginChoice, SearchContext, SearchParameter
from forgeline.services.tuning.planning import TunePlanner, apply, recipe_updates
from forgeline.services.tuning.search import (
    COMPLETED,
    FAILED,
    STOPPED_EARLY,
    TrialBook,
    TrialRecord,
    importances,
    pareto_front,
)

LR = SearchParameter("hyper_parameters.learning_rate", "loguniform", 1e-4, 1e-1)
R = SearchParameter("finetune.config.r", "choice", values=(2, 8))


def test_sampled_values_land_on_the_training_fields_with_their_types():
    spec = TrainSpec(
        train=DatasetRef("ds"),
        model=ModelChoice(builtin="minilm-l6"),
        finetune=PluginChoice("lora", {"alpha": 16}),
    )
    values = {
        "hyper_parameters.learning_rate": np.float64(0.003),
        "hyper_parameters.batch_size_per_worker": np.int64(16),
        "hyper_parameters.max_sequence_length": 64.0,
        "finetune.config.r": np.int64(8),
    }
    changed = apply(spec, values)
    assert changed.learning_rate == 0.003 and changed.batch_size == 16
    assert type(changed.batch_size) is int and type(changed.max_length) is int
    assert changed.finetune == PluginChoice("lora", {"alpha": 16, "r": 8})
    assert type(changed.finetune.config["r"]) is int
    updates = recipe_updates({"alpha": 16, "r": 4}, values)
    assert updates == {
        "learning_rate": 0.003,
        "batch_size": 16,
        "max_length": 64,
        "finetune_config": {"alpha": 16, "r": 8},
    }


@dataclass
class _Train:
    num_rows: int


@dataclass
class _Plan:
    hyper: dict
    train: _Train = field(default_factory=lambda: _Train(100))


HYPER = {"batch_size": 10, "gradient_accumulation_steps": 1, "epochs": 3, "max_steps": 0}


@pytest.mark.parametrize(
    ("hyper", "space", "most"),
    [
        ({}, (), 3),
        ({}, (SearchParameter("hyper_parameters.epochs", "integer", 2, 7),), 7),
        ({"max_steps": 25}, (), 3),  # 10 steps an epoch: 25 steps report after 3 epochs
        (
            {"max_steps": 25},
            (SearchParameter("hyper_parameters.batch_size_per_worker", "choice", values=(5, 50)),),
            13,  # batch 50: 2 steps an epoch, 25 steps in 13 epochs
        ),
    ],
)
def test_the_most_epochs_a_trial_reports(hyper, space, most):
    plan = _Plan({**HYPER, **hyper})
    assert TunePlanner._max_iterations(plan, space) == most


def record(number, state, **metrics) -> TrialRecord:
    return TrialRecord(id=f"t{number}", number=number, state=state, metrics=metrics)


def test_the_pareto_front_holds_the_completed_trials_nothing_dominates():
    objectives = (Objective("acc", "max"), Objective("size", "min"))
    trials = [
        record(1, COMPLETED, acc=0.90, size=100),
        record(2, COMPLETED, acc=0.80, size=10),
        record(3, COMPLETED, acc=0.85, size=200),  # worse than 1 on both
        record(4, COMPLETED, acc=0.90, size=100),  # equal to 1: neither dominates
        record(5, STOPPED_EARLY, acc=0.99, size=1),  # not completed
        record(6, COMPLETED, acc=0.80, size=50),  # dominated by 2
    ]
    assert [t.number for t in pareto_front(trials, objectives)] == [1, 2, 4]


def test_importances_single_out_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    trials = []
    for i in range(24):
        lr, r = float(10 ** rng.uniform(-4, -1)), int(rng.choice([2, 8]))
        loss = (np.log10(lr) + 2.5) ** 2 + 0.001 * r
        trials.append(
            TrialRecord(
                id=f"t{i}",
                number=i + 1,
                state=COMPLETED,
                parameters={LR.name: lr, R.name: r},
                metrics={"eval_loss": loss},
            )
        )
    trials.append(TrialRecord(id="f", number=25, state=FAILED))
    plan = SimpleNamespace(
        search=SearchContext((LR, R), (Objective("eval_loss", "min"),), 25, 1, 0)
    )
    found = importances(trials, plan)
    assert set(found) == {LR.name, R.name}
    assert found[LR.name] > 0.8 and sum(found.values()) == pytest.approx(1.0)
    assert importances(trials[:1], plan) == {}


def test_the_book_survives_a_restart_and_picks_the_best_completed_trial(tmp_path):
    plan = SimpleNamespace(
        num_trials=3, search=SimpleNamespace(objectives=(Objective("eval_accuracy", "max"),))
    )
    book = TrialBook(tmp_path / "trials.json", plan)
    for number, (state, acc) in enumerate(
        [(COMPLETED, 0.8), (STOPPED_EARLY, 0.95), (COMPLETED, 0.9), (COMPLETED, 0.9)], start=1
    ):
        trial = SimpleNamespace(
            trial_id=f"t{number}", experiment_tag=f"{number}_lr=0.1", config={"x": number}
        )
        entry = book.record(trial)
        entry.state, entry.metrics = state, {"eval_accuracy": acc}
    book.save()
    again = TrialBook(tmp_path / "trials.json", plan)
    assert [t.number for t in again.trials.values()] == [1, 2, 3, 4]
    assert again.trials["t2"].parameters == {"x": 2}
    best = again.best()
    assert best is not None and best.id == "t3"  # stopped early never wins; ties: the earlier
    assert again.finished() == 4
