"""Fairness on real data: a classifier on UCI Adult (census income, 32,561 training and 16,281
test rows) audited on `sex` by the real SafetyService over gRPC, then mitigated.

The model under audit is a scikit-learn logistic regression on the standardized numbers and the
one-hot categories (every column but fnlwgt, a census sampling weight; `sex` and `race`
included, as a naive model would have them), trained here on the training rows; its scores and
decisions on the test rows go into columns of the test dataset. It lands at the published
84-86% accuracy, selecting men far more often than women.

Mitigated two ways, both judged on the test rows against the issue's goal (the demographic
parity difference at most half of the unmitigated one, at most 2 points of accuracy lost):
- threshold_optimizer (demographic parity, tolerance TOLERANCE) post-processes the model's
  scores per group, fitted on the training rows' out-of-fold scores (5-fold cross-validation:
  the rows a threshold is chosen on were never trained on);
- exponentiated_gradient (demographic parity, EPS) trains its own logistic regression on the
  same feature columns; its "before" is that regression without the constraint.

Exact parity (no tolerance) costs the threshold optimizer just over 2 points here (0.852 ->
0.831 when this was written), so the tolerance is the honest knob the goal leaves. Skipped
where ../shared/data is absent. `pytest -s` prints the table; FORGELINE_WRITE_RESULTS=1 also
writes benchmarks/results/fairness_adult.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.datasets import DatasetRepository
from forgeline.v1 import common_pb2
from forgeline.v1 import safety_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings, shared_data

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
NUMBERS = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORIES = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
FEATURES = NUMBERS + CATEGORIES
POSITIVE = ">50K"
SEED = 7
TOLERANCE = 0.05  # threshold_optimizer: selection rates may differ by this much
EPS = 0.01  # exponentiated_gradient: allowed violation of the constraint
GOAL_RATIO = 0.5  # the difference after at most half the difference before
MAX_ACCURACY_LOSS = 0.02
GATE = 0.1  # the audit's bound on the demographic parity difference


def read_adult(name: str) -> pa.Table:
    """adult.data / adult.test: no header, ", "-separated; the test file starts with a comment
    line and its labels end in "."."""
    import pandas as pd

    frame = pd.read_csv(
        shared_data(f"fairness/adult/{name}"),
        header=None,
        names=COLUMNS,
        skipinitialspace=True,
        comment="|",
    ).dropna(subset=["income"])
    frame["income"] = frame["income"].str.rstrip(".")
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.fixture(scope="module")
def adult() -> dict[str, pa.Table]:
    """The train and test rows, with the model under audit's scores (train: out-of-fold) and
    decisions (test) as columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, test = read_adult("adult.data"), read_adult("adult.test")
    assert (train.num_rows, test.num_rows) == (32561, 16281)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("numbers", StandardScaler(), NUMBERS),
                ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
            ]
        ),
        LogisticRegression(max_iter=1000),
    )
    x_train = train.select(FEATURES).to_pandas()
    y_train = np.array(train.column("income").to_pylist()) == POSITIVE
    train_scores = cross_val_predict(model, x_train, y_train, cv=5, method="predict_proba")[:, 1]
    model.fit(x_train, y_train)
    test_scores = model.predict_proba(test.select(FEATURES).to_pandas())[:, 1]
    decisions = np.where(test_scores >= 0.5, POSITIVE, "<=50K")
    return {
        "train": train.append_column("score", pa.array(train_scores)),
        "test": test.append_column("score", pa.array(test_scores)).append_column(
            "decision", pa.array(decisions)
        ),
    }


@pytest.fixture(scope="module")
def safety(adult, tmp_path_factory) -> Iterator[tuple[Client, dict[str, str]]]:
    """A safety service with the Adult train and test rows stored as datasets."""
    home = tmp_path_factory.mktemp("fairness-home")
    thread = ServiceThread("safety", make_settings(home, [tmp_path_factory.mktemp("data")]))
    thread.start()
    datasets = DatasetRepository(ArtifactStore(home / "artifacts"))
    ids = {
        part: datasets.save(
            table, name=f"adult-{part}", text_column="", label_column="income", lineage=Lineage()
        ).id
        for part, table in adult.items()
    }
    try:
        with Client(thread.address) as client:
            client.wait_ready()
            yield client, ids
    finally:
        thread.stop()


def mitigate(client: Client, ids: dict[str, str], plugin: str, config: dict, **fields):
    request = pb.MitigateFairnessRequest(
        train=common_pb2.DatasetInput(dataset_id=ids["train"]),
        eval=common_pb2.DatasetInput(dataset_id=ids["test"]),
        sensitive_columns=["sex"],
        mitigator=common_pb2.PluginSpec(name=plugin, config=struct(config)),
        positive_label=POSITIVE,
        seed=SEED,
        thresholds=pb.FairnessThresholds(max_demographic_parity_difference=GATE),
        **fields,
    )
    started = time.monotonic()
    done = client.wait(client.safety.MitigateFairness(request), pb.MitigateFairnessResponse, 600)
    return done, time.monotonic() - started


def test_adult_audited_on_sex_then_mitigated_halves_the_parity_gap(safety):
    client, ids = safety
    started = time.monotonic()
    audit = client.wait(
        client.safety.AuditFairness(
            pb.AuditFairnessRequest(
                dataset=common_pb2.DatasetInput(dataset_id=ids["test"]),
                sensitive_columns=["sex"],
                prediction_column="decision",
                positive_label=POSITIVE,
                thresholds=pb.FairnessThresholds(max_demographic_parity_difference=GATE),
            )
        ),
        pb.AuditFairnessResponse,
        300,
    )
    audit_seconds = time.monotonic() - started
    model = audit.metrics
    assert 0.84 <= model.accuracy <= 0.87, model  # the published 84-86%
    assert [(g.group, g.count) for g in model.groups] == [("Female", 5421), ("Male", 10860)]
    assert model.demographic_parity_difference > 1.5 * GATE  # men are selected far more often
    assert audit.passed == 0 and not audit.checks[0].passed  # the gate blocks this model

    runs = {
        f"threshold_optimizer (tol={TOLERANCE})": mitigate(
            client, ids, "threshold_optimizer", {"tol": TOLERANCE}, score_column="score"
        ),
        f"exponentiated_gradient (eps={EPS})": mitigate(
            client, ids, "exponentiated_gradient", {"eps": EPS}, feature_columns=FEATURES
        ),
    }
    table = {"model under audit": (model, model, audit_seconds)}
    table.update({name: (r.before, r.after, seconds) for name, (r, seconds) in runs.items()})
    report(table)
    threshold = runs[f"threshold_optimizer (tol={TOLERANCE})"][0]
    assert threshold.before.accuracy == pytest.approx(model.accuracy)  # the same decisions
    assert set(threshold.details["groups"]) == {"Female", "Male"}
    for name, (result, _) in runs.items():
        before, after = result.before, result.after
        assert after.demographic_parity_difference <= GOAL_RATIO * (
            before.demographic_parity_difference
        ), name
        assert before.accuracy - after.accuracy <= MAX_ACCURACY_LOSS, name
        assert result.passed == 1 and result.predictions.id.startswith("ds_"), name
    entries = client.safety.ListAuditEntries(pb.ListAuditEntriesRequest()).entries
    assert [e.event.kind for e in entries] == ["fairness_audit"] + ["fairness_mitigation"] * 2
    assert [e.sequence for e in entries] == [audit.audit_sequence] + [
        r.audit_sequence for r, _ in runs.values()
    ]


def report(table: dict[str, tuple]) -> None:
    """Prints the before / after table; FORGELINE_WRITE_RESULTS=1 writes it as
    benchmarks/results/fairness_adult.json (the benchmarks' format: metrics and judged goals)."""
    print("\n\nUCI Adult test rows (16,281), sensitive feature: sex, favourable outcome: >50K")
    print(
        f"{'':<36}{'acc before':>11}{'acc after':>10}{'DPD before':>11}{'DPD after':>10}"
        f"{'EOD after':>10}{'seconds':>8}"
    )
    for name, (before, after, seconds) in table.items():
        print(
            f"{name:<36}{before.accuracy:>11.4f}{after.accuracy:>10.4f}"
            f"{before.demographic_parity_difference:>11.4f}"
            f"{after.demographic_parity_difference:>10.4f}"
            f"{after.equalized_odds_difference:>10.4f}{seconds:>8.1f}"
        )
    if os.environ.get("FORGELINE_WRITE_RESULTS") != "1":
        return
    import fairlearn
    import sklearn

    from benchmarks._common import judge, machine, write_results

    names = ("accuracy", "demographic_parity_difference", "equalized_odds_difference")
    (_, (model, _, _)), *mitigations = table.items()
    metrics = {f"model_{n}": getattr(model, n) for n in names}
    goals = []
    for name, (before, after, seconds) in mitigations:
        key = name.split(" ")[0]
        metrics.update({f"{key}_{n}_before": getattr(before, n) for n in names})
        metrics.update({f"{key}_{n}_after": getattr(after, n) for n in names})
        metrics[f"{key}_accuracy_loss"] = before.accuracy - after.accuracy
        metrics[f"{key}_seconds"] = seconds
        goals += [
            {
                "metric": f"{key}_demographic_parity_difference_after",
                "op": "<=",
                "target": GOAL_RATIO * before.demographic_parity_difference,
            },
            {"metric": f"{key}_accuracy_loss", "op": "<=", "target": MAX_ACCURACY_LOSS},
        ]
    write_results(
        {
            "benchmark": "fairness_adult",
            "machine": machine(scikit_learn=sklearn.__version__, fairlearn=fairlearn.__version__),
            "data": "UCI Adult: adult.data (32,561 rows) to fit, adult.test (16,281) to judge",
            "model": "logistic regression on standardized numbers + one-hot categories "
            "(no fnlwgt); threshold_optimizer fitted on its 5-fold out-of-fold training scores",
            "sensitive_columns": ["sex"],
            "configs": {
                "threshold_optimizer": {"constraint": "demographic_parity", "tol": TOLERANCE},
                "exponentiated_gradient": {"constraint": "demographic_parity", "eps": EPS},
            },
            "metrics": metrics,
            "goals": judge(goals, metrics),
        }
    )
