"""The fairness domain: fairlearn's metrics against values worked out by hand, threshold checks,
the feature encoding, and FairnessJobs end to end on datasets in a real artifact store (a
column of decisions, a column of scores, feature columns, and a tiny random-init BERT
classifier), including every request field it refuses and what reaches the audit log."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.datasets import DatasetRef, DatasetRepository
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.models import ModelRepository
from forgeline.operations import OperationContext, OperationStore
from forgeline.paths import PathValidator
from forgeline.registry import PluginChoice, PluginRegistry
from forgeline.services.safety.fairness import (
    PREDICTION_COLUMN,
    AuditSpec,
    FairnessJobs,
    FeatureEncoding,
    MitigateSpec,
    Thresholds,
    checks,
    measure,
)
from forgeline.services.training.jobs import TrainingJobs
from forgeline.v1 import safety_service_pb2
from tests.conftest import make_settings

# --- measure and checks --------------------------------------------------------------------------

#              group a     | group b
Y_TRUE = [1, 1, 0, 0, 1, 0, 0, 0]
Y_PRED = [1, 0, 1, 0, 1, 1, 1, 0]
GROUPS = ["a"] * 4 + ["b"] * 4


def test_measure_matches_the_hand_computed_audit():
    m = measure(Y_TRUE, Y_PRED, GROUPS)
    a, b = m.groups
    # a: 2 of 4 right, 2 of 4 selected, 1 of 2 negatives selected, 1 of 2 positives missed.
    assert (a.group, a.count, a.accuracy, a.selection_rate) == ("a", 4, 0.5, 0.5)
    assert (a.false_positive_rate, a.false_negative_rate) == (0.5, 0.5)
    # b: 2 of 4 right, 3 of 4 selected, 2 of 3 negatives selected, its one positive found.
    assert (b.group, b.count, b.accuracy, b.selection_rate) == ("b", 4, 0.5, 0.75)
    assert b.false_positive_rate == pytest.approx(2 / 3) and b.false_negative_rate == 0.0
    assert (m.count, m.accuracy, m.selection_rate) == (8, 0.5, 5 / 8)
    assert m.false_positive_rate == pytest.approx(3 / 5)
    assert m.false_negative_rate == pytest.approx(1 / 3)
    assert m.demographic_parity_difference == pytest.approx(0.25)
    assert m.demographic_parity_ratio == pytest.approx(0.5 / 0.75)
    # True positive rates 0.5 vs 1.0, false positive rates 0.5 vs 2/3: the larger gap.
    assert m.equalized_odds_difference == pytest.approx(0.5)
    assert m.scalars("before_")["before_demographic_parity_difference"] == pytest.approx(0.25)


def test_undefined_rates_are_zero_and_nothing_is_nan():
    # Group c has no negative rows: its false positive rate is undefined and reported as 0.
    m = measure([1, 1, 0, 1], [1, 0, 0, 1], ["c", "c", "d", "d"])
    c = m.groups[0]
    assert (c.group, c.false_positive_rate, c.false_negative_rate) == ("c", 0.0, 0.5)
    # Nobody selected: selection rates 0 / 0, which is parity (ratio 1), not NaN.
    none = measure([1, 0, 1, 0], [0, 0, 0, 0], ["c", "c", "d", "d"])
    assert none.demographic_parity_ratio == 1.0 and none.demographic_parity_difference == 0.0
    for result in (m, none):
        json.dumps(result.as_dict(), allow_nan=False)


def test_checks_pass_and_fail_against_the_bounds_set():
    m = measure(Y_TRUE, Y_PRED, GROUPS)
    found = checks(
        m,
        Thresholds(
            max_demographic_parity_difference=0.2,
            min_demographic_parity_ratio=0.6,
            min_accuracy=0.5,
        ),
    )
    assert [(c.metric, c.op, c.threshold, c.passed) for c in found] == [
        ("demographic_parity_difference", "<=", 0.2, False),
        ("demographic_parity_ratio", ">=", 0.6, True),
        ("accuracy", ">=", 0.5, True),
    ]
    assert found[0].value == pytest.approx(0.25)
    assert checks(m, Thresholds()) == []
    with pytest.raises(InvalidArgument) as caught:
        Thresholds(min_accuracy=1.5, max_equalized_odds_difference=float("nan")).validate()
    assert {v.field for v in caught.value.violations} == {
        "thresholds.min_accuracy",
        "thresholds.max_equalized_odds_difference",
    }


def test_feature_encoding_learns_on_the_training_rows():
    train = pa.table(
        {
            "age": [30, None, 50],
            "job": ["clerk", "nurse", None],
            "flag": [True, False, True],
        }
    )
    held = pa.table({"age": [40], "job": ["pilot"], "flag": [False]})
    encoding = FeatureEncoding.fit(train, ["age", "job", "flag"])
    assert encoding.names == ["age", "job=clerk", "job=nurse", "flag"]
    # A null number is the training mean; a null or unseen string is all zeros.
    assert encoding.transform(train).tolist() == [
        [30.0, 1.0, 0.0, 1.0],
        [40.0, 0.0, 1.0, 0.0],
        [50.0, 0.0, 0.0, 1.0],
    ]
    assert encoding.transform(held).tolist() == [[40.0, 0.0, 0.0, 0.0]]
    with pytest.raises(InvalidArgument, match="feature_columns.*list"):
        FeatureEncoding.fit(pa.table({"tags": [["x"], ["y"]]}), ["tags"])
    with pytest.raises(InvalidArgument, match="too many"):
        FeatureEncoding.fit(pa.table({"id": [str(i) for i in range(1001)]}), ["id"])


# --- FairnessJobs on a real store ----------------------------------------------------------------


def rows(n: int, seed: int) -> pa.Table:
    """Women ("f") earn "yes" 25% of the time, men ("m") 60%; x1, x2 and the score follow the
    label, so decisions from the score select men far more often."""
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.5, "f", "m")
    y = rng.random(n) < np.where(sex == "m", 0.6, 0.25)
    x1 = y * 1.5 + rng.normal(0, 1, n)
    x2 = np.where(y ^ (rng.random(n) < 0.3), "high", "low")
    score = 1 / (1 + np.exp(-(x1 * 1.5 - 1.0)))
    return pa.table(
        {
            "label": np.where(y, "yes", "no"),
            "sex": sex,
            "x1": x1,
            "x2": x2,
            "score": score,
            "decision": np.where(score >= 0.5, "yes", "no"),
            "coded": (score >= 0.5).astype(np.int64),
        }
    )


class Workspace:
    def __init__(self, tmp: Path) -> None:
        self.store = ArtifactStore(tmp / "artifacts")
        self.datasets = DatasetRepository(self.store)
        registry = PluginRegistry()
        settings = make_settings(tmp / "home", [tmp])
        self.training = TrainingJobs(
            registry, self.datasets, self.store, PathValidator([tmp]), settings
        )
        self.records: list[tuple[str, str, dict]] = []
        self.jobs = FairnessJobs(
            registry, self.datasets, self.store, ModelRepository(self.store), self.record
        )
        self.operations = OperationStore(tmp / "operations.db")

    def record(self, kind: str, subject: str, details: dict) -> int:
        json.dumps(details, allow_nan=False)  # what the audit log stores: plain JSON
        self.records.append((kind, subject, details))
        return len(self.records)

    def context(self) -> OperationContext:
        row = self.operations.create("test/Fairness", safety_service_pb2.AuditFairnessRequest(), "")
        return OperationContext(self.operations, row.name, threading.Event(), threading.Event())

    def metrics(self, ctx: OperationContext) -> dict[str, float]:
        events = self.operations.events(ctx.name, 0)
        return {p.name: p.value for e in events if e.HasField("metrics") for p in e.metrics.points}

    def save(self, table: pa.Table, name: str, text: str = "") -> str:
        return self.datasets.save(
            table, name=name, text_column=text, label_column="label", lineage=Lineage()
        ).id


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def ids(ws) -> dict[str, str]:
    return {"train": ws.save(rows(600, 0), "adultish-train"), "eval": ws.save(rows(400, 1), "ev")}


def audit_spec(dataset_id: str, **fields) -> AuditSpec:
    values = {
        "dataset": DatasetRef(dataset_id),
        "sensitive_columns": ("sex",),
        "prediction_column": "decision",
        "positive_label": "yes",
        **fields,
    }
    return AuditSpec(**values)


def test_an_audit_of_a_decision_column_measures_records_and_gates(ws, ids):
    ctx = ws.context()
    spec = audit_spec(
        ids["eval"],
        thresholds=Thresholds(max_demographic_parity_difference=0.1, min_accuracy=0.5),
    )
    outcome = ws.jobs.audit(spec, ctx)
    table = rows(400, 1)
    sex = np.array(table.column("sex").to_pylist())
    chosen = np.array(table.column("decision").to_pylist()) == "yes"
    m = outcome.metrics
    assert [(g.group, g.count) for g in m.groups] == [(s, int((sex == s).sum())) for s in "fm"]
    rates = {g.group: g.selection_rate for g in m.groups}
    assert rates == pytest.approx({s: chosen[sex == s].mean() for s in "fm"})
    assert m.demographic_parity_difference == pytest.approx(abs(rates["m"] - rates["f"]))
    assert m.demographic_parity_difference > 0.2  # the data is built unfair
    assert [c.passed for c in outcome.checks] == [False, True] and not outcome.passed
    assert (outcome.subject, outcome.positive_label) == ("column:decision", "yes")
    kind, subject, details = ws.records[-1]
    assert (kind, subject, outcome.audit_sequence) == ("fairness_audit", "column:decision", 1)
    assert details["passed"] is False and details["dataset_id"] == ids["eval"]
    assert details["metrics"]["groups"][0]["group"] == "f"
    streamed = ws.metrics(ctx)
    assert streamed["demographic_parity_difference"] == pytest.approx(
        m.demographic_parity_difference
    )
    assert streamed["passed"] == 0.0


def test_audit_requests_are_refused_naming_the_field(ws, ids):
    coded = ws.save(rows(50, 2).select(["label", "sex", "coded"]), "coded")
    one_group = ws.save(
        rows(50, 2).select(["label", "decision"]).append_column("sex", pa.array(["f"] * 50)),
        "one-group",
    )
    cases = [
        (audit_spec(""), InvalidArgument, "dataset.dataset_id"),
        (audit_spec("ds_missing"), NotFound, "dataset.dataset_id"),
        (
            audit_spec(ids["eval"], dataset=DatasetRef(ids["eval"], label_column="income")),
            InvalidArgument,
            "dataset.label_column.*columns",
        ),
        (
            audit_spec(ids["eval"], sensitive_columns=("race",)),
            InvalidArgument,
            r"sensitive_columns\[0\].*columns: \['label', 'sex'",
        ),
        (audit_spec(ids["eval"], sensitive_columns=()), InvalidArgument, "sensitive_columns"),
        (audit_spec(one_group), InvalidArgument, "sensitive_columns.*only the group"),
        (audit_spec(ids["eval"], prediction_column="guess"), InvalidArgument, "prediction_column"),
        (
            audit_spec(coded, prediction_column="coded"),
            InvalidArgument,
            "prediction_column.*not labels",
        ),
        (
            audit_spec(ids["eval"], prediction_column=""),
            InvalidArgument,
            "model_id or prediction_column",
        ),
        (
            audit_spec(ids["eval"], prediction_column="", model_id="mdl_missing"),
            NotFound,
            "model_id",
        ),
        (
            audit_spec(ids["eval"], prediction_column="", model_id=ids["train"]),
            FailedPrecondition,
            "model_id.*not a model",
        ),
        (
            audit_spec(ids["eval"], positive_label="maybe"),
            InvalidArgument,
            r"positive_label.*\['no', 'yes'\]",
        ),
        (
            audit_spec(ids["eval"], positive_label=""),
            InvalidArgument,
            r"positive_label.*\['no', 'yes'\]",
        ),
        (
            audit_spec(ids["eval"], thresholds=Thresholds(max_demographic_parity_difference=1.5)),
            InvalidArgument,
            "thresholds.max_demographic_parity_difference",
        ),
        (audit_spec(ids["eval"], max_length=4), InvalidArgument, "max_sequence_length"),
    ]
    for spec, error, message in cases:
        with pytest.raises(error, match=message):
            ws.jobs.plan_audit(spec)
    assert ws.records == []  # nothing was audited


def mitigate_spec(ids: dict[str, str], mitigator: str, **fields) -> MitigateSpec:
    values = {
        "train": DatasetRef(ids["train"]),
        "eval": DatasetRef(ids["eval"]),
        "sensitive_columns": ("sex",),
        "mitigator": PluginChoice(mitigator),
        "positive_label": "yes",
        "seed": 3,
        **fields,
    }
    return MitigateSpec(**values)


def test_threshold_optimizer_on_a_score_column_halves_the_gap_and_commits_the_decisions(ws, ids):
    spec = mitigate_spec(
        ids,
        "threshold_optimizer",
        score_column="score",
        thresholds=Thresholds(max_demographic_parity_difference=0.1),
    )
    ctx = ws.context()
    outcome = ws.jobs.mitigate(spec, ctx, "req-1")
    before, after = outcome.before, outcome.after
    # The before is the score column thresholded at 0.5, i.e. the decision column.
    audited = ws.jobs.audit(audit_spec(ids["eval"]), ws.context()).metrics
    assert before == audited
    assert after.demographic_parity_difference <= 0.5 * before.demographic_parity_difference
    assert [c.metric for c in outcome.checks] == ["demographic_parity_difference"]
    assert outcome.passed == (after.demographic_parity_difference <= 0.1)
    assert set(outcome.details["groups"]) == {"f", "m"}
    assert outcome.details["constraint"] == "demographic_parity"
    # The committed dataset holds the eval rows and exactly the decisions measured as "after".
    committed = ws.datasets.read(ws.datasets.get(outcome.predictions.id))
    assert committed.num_rows == 400 and set(committed.column(PREDICTION_COLUMN).to_pylist()) <= {
        "yes",
        "no",
    }
    assert outcome.predictions.lineage.parent_ids == [ids["train"], ids["eval"]]
    again = ws.jobs.audit(
        audit_spec(outcome.predictions.id, prediction_column=PREDICTION_COLUMN), ws.context()
    )
    assert again.metrics == after
    kind, subject, details = ws.records[0]
    assert (kind, subject) == ("fairness_mitigation", "column:score")
    assert details["predictions_dataset_id"] == outcome.predictions.id
    assert details["after"]["demographic_parity_difference"] == after.demographic_parity_difference
    assert ws.metrics(ctx)["before_demographic_parity_difference"] == pytest.approx(
        before.demographic_parity_difference
    )
    # The same request again (a restart) finds its committed dataset instead of a second one.
    assert ws.jobs.mitigate(spec, ws.context(), "req-1").predictions.id == outcome.predictions.id


def test_exponentiated_gradient_trains_on_the_feature_columns(ws, ids):
    spec = mitigate_spec(ids, "exponentiated_gradient", score_column="score")
    plan = ws.jobs.plan_mitigate(spec)
    # Not the label, the sensitive column or the score; decision and coded are columns too.
    assert plan.features == ("x1", "x2", "decision", "coded")
    spec = replace(spec, feature_columns=("x1", "x2"), score_column="")
    outcome = ws.jobs.mitigate(spec, ws.context(), "")
    before, after = outcome.before, outcome.after  # before: the unconstrained regression
    assert 0.6 < before.accuracy and before.demographic_parity_difference > 0.2
    assert after.demographic_parity_difference <= 0.5 * before.demographic_parity_difference
    assert outcome.details["predictors"] >= 1 and outcome.passed  # no thresholds: passes
    assert ws.records[-1][1] == outcome.predictions.id


def test_mitigate_requests_are_refused_naming_the_field(ws, ids):
    to = "threshold_optimizer"
    cases = [
        (mitigate_spec(ids, ""), "mitigator.name.*threshold_optimizer"),
        (mitigate_spec(ids, "fairest"), "mitigator.name"),
        (
            replace(mitigate_spec(ids, to), mitigator=PluginChoice(to, {"constraint": "luck"})),
            "mitigator.config.constraint",
        ),
        (mitigate_spec(ids, to), "model_id or score_column"),
        (mitigate_spec(ids, to, score_column="score", eval=DatasetRef()), "eval.dataset_id"),
        (mitigate_spec(ids, to, score_column="x1"), "score_column.*in \\[0, 1\\]"),
        (mitigate_spec(ids, to, score_column="sex"), "score_column.*not numbers"),
        (
            mitigate_spec(ids, to, score_column="score", sensitive_columns=("age",)),
            r"sensitive_columns\[0\]",
        ),
        (
            mitigate_spec(ids, "exponentiated_gradient", feature_columns=("x1", "height")),
            r"feature_columns\[1\].*height",
        ),
        (mitigate_spec(ids, to, score_column="score", output_name="a/b"), "output_name"),
        (mitigate_spec(ids, to, score_column="score", positive_label="1"), "positive_label"),
    ]
    for spec, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            ws.jobs.plan_mitigate(spec)


# --- a model under audit -------------------------------------------------------------------------


def tiny_classifier(work: Path, labels: list[str]) -> Path:
    """A random-init tiny BERT sequence classifier with a tokenizer (no training)."""
    from forgeline.models import SEQUENCE_CLASSIFICATION, load_model
    from forgeline.testing.classifiers import base_model

    base = base_model(work / "base")
    out = work / "classifier"
    load_model(SEQUENCE_CLASSIFICATION, str(base), labels).save_pretrained(
        out, safe_serialization=True
    )
    for name in base.iterdir():
        if "token" in name.name:
            shutil.copy(name, out / name.name)
    return out


def test_a_model_is_audited_and_mitigated_on_its_scores_as_the_training_service_predicts(
    ws, tmp_path
):
    from forgeline.testing.classifiers import reviews

    folder = tiny_classifier(tmp_path / "model", ["no", "yes"])
    meta = {"format": "hf", "task": "sequence_classification", "max_length": 32}
    model = ws.store.commit_dir(
        shutil.copytree(folder, tmp_path / "two"),
        kind="model",
        name="tiny",
        metadata={**meta, "labels": ["no", "yes"]},
        lineage=Lineage(),
    )
    texts, sentiment = reviews(4)
    table = pa.table(
        {
            "text": texts,
            "label": ["yes" if s == "pos" else "no" for s in sentiment],
            "sex": ["f", "m"] * 20,
        }
    )
    dataset = ws.save(table, "reviews", text="text")
    spec = audit_spec(dataset, prediction_column="", model_id=model.id)
    outcome = ws.jobs.audit(spec, ws.context())
    predicted = [p.label for p in ws.training.predict(model.id, texts, 32, 0)]
    sex = np.array(table.column("sex").to_pylist())
    chosen = np.array(predicted) == "yes"
    assert outcome.subject == model.id and outcome.metrics.count == 40
    assert {g.group: g.selection_rate for g in outcome.metrics.groups} == pytest.approx(
        {s: chosen[sex == s].mean() for s in "fm"}
    )
    assert ws.records[-1][:2] == ("fairness_audit", model.id)
    # Mitigating the model: its argmax decisions are the before, its scores are thresholded.
    mitigated = ws.jobs.mitigate(
        mitigate_spec(
            {"train": dataset, "eval": dataset}, "threshold_optimizer", model_id=model.id
        ),
        ws.context(),
        "",
    )
    assert mitigated.before == outcome.metrics and mitigated.after.count == 40
    assert mitigated.predictions.lineage.parent_ids == [dataset, dataset, model.id]
    three = ws.store.commit_dir(
        shutil.copytree(folder, tmp_path / "three"),
        kind="model",
        name="tiny3",
        metadata={**meta, "labels": ["a", "b", "c"]},
        lineage=Lineage(),
    )
    with pytest.raises(InvalidArgument, match="model_id.*binary"):
        ws.jobs.plan_audit(replace(spec, model_id=three.id))
    no_text = ws.save(table.drop_columns(["text"]), "no-text")
    with pytest.raises(InvalidArgument, match="dataset.text_column"):
        ws.jobs.plan_audit(replace(spec, dataset=DatasetRef(no_text)))
