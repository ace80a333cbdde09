"""`forgeline tune` against a real tuning service on the session's local Ray: a two-trial
search over a tiny model described with `train run`'s options, and bad input named (by the
command for a malformed --param, by the service for a field the training does not have)."""

from __future__ import annotations

import json

import pytest

from tests.cli_runner import forgeline
from tests.fixtures import TINY_BERT, reviews

TRAINING = [
    "--model", "config:bert", "--model-config", json.dumps(TINY_BERT), "--vocab-size", "120",
    "--lr", "5e-3", "--batch-size", "8", "--epochs", "1", "--seed", "3",
]  # fmt: skip


def cli(tuning, *args: str):
    return forgeline({"tuning": tuning.service.address}, "tune", *args)


@pytest.mark.slow
def test_a_search_runs_its_trials_and_keeps_the_best_model(tuning):
    train = tuning.dataset(reviews(4), "cli-tune-train")
    held_out = tuning.dataset(reviews(1, offset=50), "cli-tune-eval")
    done = cli(
        tuning, train.id, "--eval", held_out.id, *TRAINING,
        "--param", "hyper_parameters.learning_rate=loguniform:1e-3,1e-2",
        "--objective", "eval_accuracy:max", "--trials", "2", "--concurrent", "1",
        "--searcher", "random", "--scheduler", "fifo", "--search-seed", "7",
        "--name", "cli-tuned", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["completed_trials"] == 2 and len(response["trials"]) == 2
    assert response["model"]["id"].startswith("mdl_")
    rate = response["best_parameters"]["hyper_parameters.learning_rate"]
    assert 1e-3 <= rate <= 1e-2
    assert response["objectives"][0]["metric"] == "eval_accuracy"

    shown = cli(
        tuning, train.id, "--eval", held_out.id, *TRAINING, "--trials", "1",
        "--param", "hyper_parameters.batch_size_per_worker=choice:[4]", "--scheduler", "fifo",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "hyper_parameters.batch_size_per_worker=4" in shown.stdout
    assert "best trial 1" in shown.stdout and "1 completed" in shown.stdout


def test_bad_input_is_refused_naming_the_option_or_field(tuning):
    train = tuning.dataset(reviews(1), "cli-tune-bad")
    malformed = cli(tuning, train.id, *TRAINING, "--param", "hyper_parameters.learning_rate=1e-3")
    assert malformed.returncode == 1 and malformed.stderr.count("INVALID_ARGUMENT") == 1
    assert "--param[0]: write PATH=DISTRIBUTION:VALUES" in malformed.stderr

    unknown = cli(tuning, train.id, *TRAINING, "--param", "hyper_parameters.colour=uniform:0,1")
    assert unknown.returncode == 1 and unknown.stderr.count("INVALID_ARGUMENT") == 1
    assert "search_space[0].name" in unknown.stderr
    assert "Traceback" not in malformed.stderr + unknown.stderr
