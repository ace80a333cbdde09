"""`forgeline fairness audit|mitigate` against a real safety service: the groups and checks a
newcomer reads, --json for scripts, exit 1 when a threshold fails, and bad input named."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from forgeline.artifacts import Lineage
from tests.cli_runner import forgeline
from tests.fixtures import Workspace, started


def rows(n: int, seed: int) -> pa.Table:
    """Men ("m") earn "yes" 60% of the time, women ("f") 25%; the score follows the label, so
    decisions from it select men far more often."""
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.5, "f", "m")
    y = rng.random(n) < np.where(sex == "m", 0.6, 0.25)
    score = 1 / (1 + np.exp(-((y * 1.5 + rng.normal(0, 1, n)) * 1.5 - 1.0)))
    return pa.table(
        {
            "label": np.where(y, "yes", "no"),
            "sex": sex,
            "score": score,
            "decision": np.where(score >= 0.5, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def safety(tmp_path_factory) -> Iterator[Workspace]:
    yield from started(tmp_path_factory, "safety")


@pytest.fixture(scope="module")
def data(safety) -> dict[str, str]:
    def save(table: pa.Table, name: str) -> str:
        return safety.datasets.save(
            table, name=name, text_column="", label_column="label", lineage=Lineage()
        ).id

    return {"train": save(rows(400, 0), "people-train"), "eval": save(rows(300, 1), "people")}


def cli(safety: Workspace, *args: str):
    return forgeline({"safety": safety.service.address}, "fairness", *args)


def test_an_audit_prints_each_group_and_fails_its_threshold(safety, data):
    args = ["audit", "people", "-s", "sex", "--prediction-column", "decision"]
    shown = cli(safety, *args, "--positive-label", "yes", "--max-dp-difference", "0.05")
    assert shown.returncode == 1, shown.stderr  # the threshold failed
    table = shown.stdout
    assert "column:decision by sex" in table and "FAIL demographic_parity_difference" in table
    assert {line.split()[1] for line in table.splitlines() if line[:3] in ("│ f", "│ m")} == {
        "f",
        "m",
    }

    passed = cli(safety, *args, "--positive-label", "yes", "--min-accuracy", "0.1", "--json")
    assert passed.returncode == 0, passed.stderr
    response = json.loads(passed.stdout)
    assert response["passed"] == 1 and response["checks"][0]["metric"] == "accuracy"
    assert {g["group"] for g in response["metrics"]["groups"]} == {"f", "m"}
    assert response["metrics"]["demographic_parity_difference"] > 0.1


def test_mitigation_narrows_the_gap_and_writes_the_decisions(safety, data):
    done = cli(
        safety, "mitigate", data["train"], "--eval", data["eval"], "-s", "sex",
        "--score-column", "score", "--positive-label", "yes", "--seed", "3", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    before, after = response["before"], response["after"]
    assert after["demographic_parity_difference"] < before["demographic_parity_difference"]
    assert response["predictions"]["id"].startswith("ds_")

    shown = cli(
        safety, "mitigate", data["train"], "--eval", data["eval"], "-s", "sex",
        "--score-column", "score", "--positive-label", "yes", "--max-dp-difference", "0.5",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "before" in shown.stdout and "after" in shown.stdout
    assert "pass demographic_parity_difference" in shown.stdout


def test_bad_input_is_refused_naming_the_option_or_field(safety, data):
    both = cli(
        safety, "audit", "people", "-s", "sex", "--model", "m", "--prediction-column", "decision"
    )
    assert both.returncode == 1
    assert both.stderr.count("INVALID_ARGUMENT") == 1
    assert "--model: give --model or --prediction-column: both were given" in both.stderr

    unknown = cli(
        safety, "audit", "people", "-s", "gender", "--prediction-column", "decision",
        "--positive-label", "yes",
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "INVALID_ARGUMENT" in unknown.stderr and "sensitive_columns" in unknown.stderr
    assert "sex" in unknown.stderr  # the columns that exist
    assert "Traceback" not in unknown.stderr
