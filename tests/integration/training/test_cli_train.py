"""`forgeline train run / evaluate / predict` against a real training service."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_runner import forgeline
from tests.fixtures import BAD, GOOD, TINY_BERT, reviews


def cli(training, *args: str) -> subprocess.CompletedProcess:
    return forgeline({"training": training.service.address}, *args)


@pytest.mark.slow
def test_train_evaluate_and_predict_from_the_command_line(training):
    train = training.dataset(reviews(8), "cli-train")
    held_out = training.dataset(reviews(1), "cli-eval")
    config = {**TINY_BERT, "hidden_dropout_prob": 0.1}
    trained = cli(
        training, "train", "run", "cli-train", "--eval", "cli-eval",
        "--model", "config:bert", "--model-config", json.dumps(config), "--vocab-size", "120",
        "--lr", "5e-3", "--batch-size", "8", "--epochs", "6", "--seed", "2", "--name", "cli-bert",
        "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    response = json.loads(trained.stdout)
    assert response["model"]["id"].startswith("mdl_") and int(response["steps"]) == 60
    assert response["evaluation"]["accuracy"] >= 0.8

    scored = cli(training, "train", "evaluate", "cli-bert", held_out.id)
    assert scored.returncode == 0, scored.stderr
    assert "10 examples" in scored.stdout and "accuracy" in scored.stdout

    predicted = cli(training, "train", "predict", "cli-bert", GOOD[1], BAD[1])
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert lines[0].startswith("pos") and lines[1].startswith("neg")

    refused = cli(training, "train", "run", train.id, "--model", "gpt-7")
    assert refused.returncode == 1
    assert "model.builtin" in refused.stderr and "minilm-l6" in refused.stderr
