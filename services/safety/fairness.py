"""Fairness audits and mitigations of binary classifiers (fairlearn). No gRPC here.

An audit measures a classifier's decisions on labelled rows across the groups of a sensitive
feature: fairlearn's MetricFrame per group (accuracy, selection rate, false positive / negative
rate, count), demographic parity difference and ratio, equalized odds difference, and pass /
fail against thresholds, so a pipeline gate can stop an unfair model. The decisions are a
model's (a sequence classifier scored on the text column, scored as the training service
scores it) or a column of decisions already made.

A mitigation runs a ``mitigators`` plugin: post-processing a model's scores per group
(``needs = "scores"``), or training a classifier under a fairness constraint on feature columns
(``needs = "features"``). It learns on the training rows and is judged on held-out rows, before
and after, with the same audit; the held-out rows with the mitigated decisions are committed as
a dataset. Every finished audit and mitigation is recorded in the audit log once.

Labels and decisions are binary: a row is positive ("selected") when its value, compared as
text, is the positive label. Every refusal names the request field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import Dataset, DatasetRef, DatasetRepository, output_name
from forgeline.errors import FailedPrecondition, Internal, InvalidArgument, Violations
from forgeline.models import SEQUENCE_CLASSIFICATION, ModelRepository
from forgeline.registry import FairnessRows, Mitigator, PluginChoice, PluginRegistry

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from forgeline.operations import OperationContext

SERVICE = "forgeline.v1.SafetyService"
# The column of the mitigated decisions in the committed dataset (label values).
PREDICTION_COLUMN = "mitigated_prediction"
# The group of rows whose sensitive value is null.
MISSING = "(missing)"
# Groups of several sensitive columns are their values joined by this.
GROUP_SEPARATOR = "|"
# One-hot encoding stops here: a column with more distinct strings is not a category.
MAX_CATEGORIES = 1000


# --- thresholds and checks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Bounds an audit passes or fails against (all in [0, 1]); None: not checked."""

    max_demographic_parity_difference: float | None = None
    min_demographic_parity_ratio: float | None = None
    max_equalized_odds_difference: float | None = None
    min_accuracy: float | None = None

    def validate(self) -> None:
        """InvalidArgument naming every bound outside [0, 1] (``thresholds.<name>``)."""
        problems = Violations()
        for name, value in asdict(self).items():
            if value is not None and not 0.0 <= value <= 1.0:  # NaN fails too
                problems.add(f"thresholds.{name}", f"{value} is not in [0, 1]")
        problems.raise_if_any()


@dataclass(frozen=True)
class Check:
    """One bound checked: ``value op threshold`` (op "<=" or ">=") and whether it held."""

    metric: str
    op: str
    threshold: float
    value: float
    passed: bool


# (bound in Thresholds, metric of FairnessResult, op)
_BOUNDS = (
    ("max_demographic_parity_difference", "demographic_parity_difference", "<="),
    ("min_demographic_parity_ratio", "demographic_parity_ratio", ">="),
    ("max_equalized_odds_difference", "equalized_odds_difference", "<="),
    ("min_accuracy", "accuracy", ">="),
)


def checks(metrics: FairnessResult, thresholds: Thresholds) -> list[Check]:
    """Every bound that is set, checked against ``metrics``, in the order of FairnessThresholds."""
    out = []
    for bound, metric, op in _BOUNDS:
        threshold = getattr(thresholds, bound)
        if threshold is None:
            continue
        value = getattr(metrics, metric)
        passed = value <= threshold if op == "<=" else value >= threshold
        out.append(Check(metric, op, float(threshold), value, bool(passed)))
    return out


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupResult:
    group: str
    count: int
    accuracy: float
    selection_rate: float
    false_positive_rate: float
    false_negative_rate: float


@dataclass(frozen=True)
class FairnessResult:
    """A classifier's decisions on some rows, overall and per group (sorted by group)."""

    count: int
    accuracy: float
    selection_rate: float
    false_positive_rate: float
    false_negative_rate: float
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    groups: list[GroupResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, named as FairnessMetrics / GroupMetrics name them."""
        return asdict(self)

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """The overall numbers (what a gate judges), e.g. {"demographic_parity_difference": 0.1}."""
        return {prefix + k: float(v) for k, v in self.as_dict().items() if k != "groups"}


def _finite(value: Any, undefined: float = 0.0) -> float:
    value = float(value)
    return value if math.isfinite(value) else undefined


def measure(y_true: Any, y_pred: Any, groups: Any) -> FairnessResult:
    """fairlearn's audit of 0/1 decisions ``y_pred`` against 0/1 labels ``y_true``, the rows
    grouped by ``groups`` (strings).

    A rate a group cannot have (a false positive rate where the group has no negative rows, a
    false negative rate where it has no positives) is reported as 0.0, as fairlearn computes
    it, and it enters the equalized odds difference as 0.0 too; the demographic parity ratio is
    1.0 (parity) when no group is selected at all. No NaN is ever returned: NaN breaks protobuf
    JSON and every gate."""
    import numpy as np
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
    )
    from sklearn.metrics import accuracy_score

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    groups = np.asarray(groups).astype(str)
    frame = MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "selection_rate": selection_rate,
            "false_positive_rate": false_positive_rate,
            "false_negative_rate": false_negative_rate,
            "count": count,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    rates = ("accuracy", "selection_rate", "false_positive_rate", "false_negative_rate")
    overall = frame.overall
    by_group = frame.by_group
    per_group = [
        GroupResult(
            group=str(name),
            count=int(row["count"]),
            **{k: _finite(row[k]) for k in rates},
        )
        for name, row in by_group.sort_index().iterrows()
    ]
    grouped = {"sensitive_features": groups}
    return FairnessResult(
        count=len(y_true),
        **{k: _finite(overall[k]) for k in rates},
        demographic_parity_difference=_finite(
            demographic_parity_difference(y_true, y_pred, **grouped)
        ),
        demographic_parity_ratio=_finite(
            demographic_parity_ratio(y_true, y_pred, **grouped), undefined=1.0
        ),
        equalized_odds_difference=_finite(equalized_odds_difference(y_true, y_pred, **grouped)),
        groups=per_group,
    )


def group_keys(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """Each row's group: its sensitive value as text (several columns joined by "|"), null as
    "(missing)"."""
    import numpy as np

    parts = [
        [MISSING if v is None else str(v) for v in table.column(c).to_pylist()] for c in columns
    ]
    return np.array([GROUP_SEPARATOR.join(values) for values in zip(*parts, strict=True)])


def _positives(values: pa.ChunkedArray, positive: str) -> np.ndarray:
    """1 where the value, as text, is the positive label; else 0 (null included)."""
    import numpy as np

    return np.array([int(v is not None and str(v) == positive) for v in values.to_pylist()])


# --- features ------------------------------------------------------------------------------------


def feature_kind(type_name: Any) -> str:
    """What a column of this Arrow type (or its name, as Dataset.columns holds it) is as a
    feature: "number" (integers, floats, booleans, decimals), "category" (strings) or ""."""
    name = str(type_name)
    if name.startswith(("int", "uint", "float", "double", "halffloat", "bool", "decimal")):
        return "number"
    if name in ("string", "large_string") or name.startswith("dictionary<values=string"):
        return "category"
    return ""


@dataclass(frozen=True)
class FeatureEncoding:
    """How feature columns become a float matrix, learned on the training rows: a number column
    is one feature (a null becomes the column's training mean); a string column is one-hot over
    the values seen in training (a value never seen there, or a null, is all zeros)."""

    columns: tuple[str, ...]
    means: dict[str, float]  # number columns
    categories: dict[str, tuple[str, ...]]  # string columns

    @classmethod
    def fit(cls, table: pa.Table, columns: Sequence[str]) -> FeatureEncoding:
        """The encoding of ``columns`` of ``table``; InvalidArgument naming ``feature_columns``
        for a column that is neither numbers nor strings or has too many distinct strings."""
        import numpy as np

        means, categories = {}, {}
        for name in columns:
            kind = feature_kind(table.schema.field(name).type)
            if kind == "number":
                values = _numbers(table.column(name))
                means[name] = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
            elif kind == "category":
                seen = sorted({str(v) for v in table.column(name).to_pylist() if v is not None})
                if len(seen) > MAX_CATEGORIES:
                    raise InvalidArgument.for_field(
                        "feature_columns",
                        f"column {name!r} has {len(seen)} distinct values, too many to one-hot "
                        f"encode (at most {MAX_CATEGORIES}); leave it out of feature_columns",
                    )
                categories[name] = tuple(seen)
            else:
                raise InvalidArgument.for_field(
                    "feature_columns",
                    f"column {name!r} is {table.schema.field(name).type}; features are numbers "
                    f"or strings",
                )
        return cls(tuple(columns), means, categories)

    @property
    def names(self) -> list[str]:
        """The matrix's columns: "age", "sex=Female", ..."""
        out = []
        for name in self.columns:
            if name in self.means:
                out.append(name)
            else:
                out.extend(f"{name}={v}" for v in self.categories[name])
        return out

    def transform(self, table: pa.Table) -> np.ndarray:
        import numpy as np

        blocks = []
        for name in self.columns:
            if name in self.means:
                values = _numbers(table.column(name))
                blocks.append(np.where(np.isfinite(values), values, self.means[name])[:, None])
                continue
            index = {v: i for i, v in enumerate(self.categories[name])}
            block = np.zeros((table.num_rows, len(index)))
            for row, v in enumerate(table.column(name).to_pylist()):
                position = index.get(None if v is None else str(v))
                if position is not None:
                    block[row, position] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((table.num_rows, 0))


def _numbers(values: pa.ChunkedArray) -> np.ndarray:
    """A number column as float64, null as NaN."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    floats = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(floats, dtype=np.float64)


# --- requests and results ------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditSpec:
    """An audit request. Exactly one subject: ``model_id`` (a sequence classifier scored on the
    dataset's text column) or ``prediction_column`` (decisions already made, as label values).
    ``positive_label`` "" means "1" for 0/1 labels; ``max_length`` 0 means the model's own."""

    dataset: DatasetRef
    sensitive_columns: tuple[str, ...]
    model_id: str = ""
    prediction_column: str = ""
    positive_label: str = ""
    thresholds: Thresholds = Thresholds()
    max_length: int = 0


@dataclass(frozen=True)
class MitigateSpec:
    """A mitigation request: learn on ``train``, judge before / after on ``eval``.

    A scores mitigator needs ``model_id`` or ``score_column`` (the positive label's
    probability). A features mitigator learns from ``feature_columns``, or, when empty, from
    every column but the label, text, sensitive, score and mitigated-prediction ones; whether
    the sensitive feature itself is a model input is the caller's choice: name it in
    ``feature_columns`` to include it."""

    train: DatasetRef
    eval: DatasetRef
    sensitive_columns: tuple[str, ...]
    mitigator: PluginChoice
    model_id: str = ""
    score_column: str = ""
    feature_columns: tuple[str, ...] = ()
    positive_label: str = ""
    thresholds: Thresholds = Thresholds()
    max_length: int = 0
    seed: int = 0
    output_name: str = ""


@dataclass
class AuditOutcome:
    metrics: FairnessResult
    checks: list[Check]
    passed: bool
    subject: str  # the model id, or "column:<prediction_column>"
    sensitive_columns: tuple[str, ...]
    positive_label: str
    audit_sequence: int


def deltas(before: FairnessResult, after: FairnessResult) -> dict[str, float]:
    """The trade-off of a mitigation: after minus before."""
    return {
        "accuracy_delta": after.accuracy - before.accuracy,
        "demographic_parity_difference_delta": after.demographic_parity_difference
        - before.demographic_parity_difference,
        "equalized_odds_difference_delta": after.equalized_odds_difference
        - before.equalized_odds_difference,
    }


@dataclass
class MitigateOutcome:
    before: FairnessResult
    after: FairnessResult
    checks: list[Check]  # on ``after``
    passed: bool
    details: dict[str, Any]  # the mitigator's, as plain JSON values
    predictions: ArtifactRecord  # the eval rows with PREDICTION_COLUMN
    audit_sequence: int

    def deltas(self) -> dict[str, float]:
        return deltas(self.before, self.after)


# --- plans ---------------------------------------------------------------------------------------


@dataclass
class Rows:
    """A dataset resolved for the work: its label and text columns ("" when not needed) and
    ``field``, the request field naming it ("dataset", "train", "eval")."""

    dataset: Dataset
    label: str
    text: str
    field: str


@dataclass
class AuditPlan:
    spec: AuditSpec
    rows: Rows
    positive: str
    model: ArtifactRecord | None
    subject: str


@dataclass
class MitigatePlan:
    spec: MitigateSpec
    train: Rows
    eval: Rows
    positive: str
    negative: str
    model: ArtifactRecord | None
    mitigator: Mitigator
    features: tuple[str, ...]  # resolved feature columns (features mitigators only)
    output_name: str


class FairnessJobs:
    """Plans and runs fairness audits and mitigations. ``record(kind, subject, details)``
    appends to the audit log and returns the entry's sequence number."""

    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        models: ModelRepository,
        record: Callable[[str, str, dict[str, Any]], int],
    ) -> None:
        self.registry = registry
        self.datasets = datasets
        self.artifacts = artifacts
        self.models = models
        self.record = record

    # === AuditFairness ==========================================================================

    def plan_audit(self, spec: AuditSpec) -> AuditPlan:
        """Checks the whole request (reading the label and sensitive columns) before any work."""
        spec.thresholds.validate()
        _check_max_length(spec.max_length)
        if not spec.model_id and not spec.prediction_column:
            raise InvalidArgument.for_field(
                "model_id", "give model_id or prediction_column: what is audited"
            )
        model = self._model(spec.model_id) if spec.model_id else None
        rows = self._rows(spec.dataset, "dataset", text=model is not None)
        columns = rows.dataset.column_names
        if spec.prediction_column and spec.prediction_column not in columns:
            raise InvalidArgument.for_field(
                "prediction_column",
                f"no column {spec.prediction_column!r} in dataset {rows.dataset.id}; "
                f"columns: {columns}",
            )
        labels = self._labels(rows, model)
        positive = _positive(spec.positive_label, labels)
        self._sensitive(spec.sensitive_columns, [rows])
        if spec.prediction_column:
            self._check_decisions(rows, spec.prediction_column, labels)
        subject = spec.model_id or f"column:{spec.prediction_column}"
        return AuditPlan(spec, rows, positive, model, subject)

    def audit(self, spec: AuditSpec, ctx: OperationContext) -> AuditOutcome:
        plan = self.plan_audit(spec)
        rows = plan.rows
        ctx.progress(0.0, f"reading dataset {rows.dataset.id}")
        table = self._read(rows, [*spec.sensitive_columns, spec.prediction_column])
        y_true = _positives(table.column(rows.label), plan.positive)
        if plan.model is not None:
            ctx.progress(0.1, f"scoring {table.num_rows} rows with model {plan.model.id}")
            _, decisions = self._score(
                plan.model, table.column(rows.text), plan.positive, spec.max_length
            )
        else:
            decisions = _positives(table.column(spec.prediction_column), plan.positive)
        ctx.progress(0.9, "measuring")
        metrics = measure(y_true, decisions, group_keys(table, spec.sensitive_columns))
        found = checks(metrics, spec.thresholds)
        passed = all(c.passed for c in found)
        ctx.metrics({**metrics.scalars(), "passed": float(passed)})
        sequence = self.record(
            "fairness_audit",
            plan.subject,
            {
                "operation": ctx.name,
                "dataset_id": rows.dataset.id,
                "sensitive_columns": list(spec.sensitive_columns),
                "positive_label": plan.positive,
                "passed": passed,
                "checks": [asdict(c) for c in found],
                "metrics": metrics.as_dict(),
            },
        )
        return AuditOutcome(
            metrics=metrics,
            checks=found,
            passed=passed,
            subject=plan.subject,
            sensitive_columns=tuple(spec.sensitive_columns),
            positive_label=plan.positive,
            audit_sequence=sequence,
        )

    # === MitigateFairness =======================================================================

    def plan_mitigate(self, spec: MitigateSpec) -> MitigatePlan:
        """Checks the whole request (reading the label, sensitive and score columns) before any
        work."""
        spec.thresholds.validate()
        _check_max_length(spec.max_length)
        if not spec.mitigator.name:
            raise InvalidArgument.for_field(
                "mitigator.name",
                "name a mitigator: "
                + ", ".join(e.name for e in self.registry.discover("mitigators")),
            )
        mitigator = self.registry.create(
            "mitigators", spec.mitigator.name, spec.mitigator.config, "mitigator"
        )
        if mitigator.needs == "scores" and not (spec.model_id or spec.score_column):
            raise InvalidArgument.for_field(
                "model_id",
                f"mitigator {mitigator.name} post-processes a model's scores: give model_id or "
                f"score_column",
            )
        model = self._model(spec.model_id) if spec.model_id else None
        train = self._rows(spec.train, "train", text=model is not None)
        if not spec.eval.dataset_id:
            raise InvalidArgument.for_field(
                "eval.dataset_id",
                "held-out rows are required: the before / after audit runs on them",
            )
        evaluation = self._rows(
            spec.eval, "eval", text=model is not None, default=(train.text, train.label)
        )
        labels = sorted(set(self._labels(train, model)) | set(self._labels(evaluation, model)))
        positive = _positive(spec.positive_label, labels)
        if len(labels) != 2:
            raise InvalidArgument.for_field(
                "train.label_column",
                f"the training and eval rows hold only the label {labels}; a mitigation needs "
                f"both classes",
            )
        self._sensitive(spec.sensitive_columns, [train, evaluation])
        if spec.score_column:
            for rows in (train, evaluation):
                self._check_scores(rows, spec.score_column)
        features: tuple[str, ...] = ()
        if mitigator.needs == "features":
            features = self._feature_columns(spec, train, evaluation)
        name = output_name(spec.output_name or f"{evaluation.dataset.name}-{mitigator.name}")
        negative = next(label for label in labels if label != positive)
        return MitigatePlan(
            spec, train, evaluation, positive, negative, model, mitigator, features, name
        )

    def mitigate(
        self, spec: MitigateSpec, ctx: OperationContext, request_id: str
    ) -> MitigateOutcome:
        plan = self.plan_mitigate(spec)
        mitigator = plan.mitigator
        ctx.progress(0.0, "reading the training and eval rows")
        train = self._read(plan.train, [*spec.sensitive_columns, spec.score_column, *plan.features])
        held = self.datasets.read(plan.eval.dataset)  # every column: it is committed again below
        fit, apply, decisions = self._fairness_rows(plan, train, held, ctx)
        ctx.progress(0.4, f"mitigating with {mitigator.name}")
        result = mitigator.mitigate(fit, apply, spec.seed)
        after_decisions = _decisions(result.predictions, len(apply), mitigator.name, "predictions")
        if result.baseline is not None:
            decisions = _decisions(result.baseline, len(apply), mitigator.name, "baseline")
        if decisions is None:
            raise FailedPrecondition(
                f"mitigator {mitigator.name} reports no baseline: give model_id or score_column "
                f"to measure the decisions before",
                reason="NO_BASELINE",
                metadata={"field": "model_id"},
            )
        ctx.progress(0.8, "measuring before and after")
        before = measure(apply.labels, decisions, apply.groups)
        after = measure(apply.labels, after_decisions, apply.groups)
        found = checks(after, spec.thresholds)
        passed = all(c.passed for c in found)
        details = _plain(result.details)
        ctx.metrics(
            {
                **before.scalars("before_"),
                **after.scalars(),
                **deltas(before, after),
                "passed": float(passed),
            }
        )
        record = self._commit(plan, held, after_decisions, ctx, request_id or ctx.name)
        sequence = self.record(
            "fairness_mitigation",
            spec.model_id or (f"column:{spec.score_column}" if spec.score_column else record.id),
            {
                "operation": ctx.name,
                "mitigator": mitigator.name,
                "config": mitigator.config.model_dump(mode="json"),
                "train_dataset_id": plan.train.dataset.id,
                "eval_dataset_id": plan.eval.dataset.id,
                "predictions_dataset_id": record.id,
                "sensitive_columns": list(spec.sensitive_columns),
                "positive_label": plan.positive,
                "passed": passed,
                "checks": [asdict(c) for c in found],
                "before": before.scalars(),
                "after": after.scalars(),
                "details": details,
            },
        )
        return MitigateOutcome(
            before=before,
            after=after,
            checks=found,
            passed=passed,
            details=details,
            predictions=record,
            audit_sequence=sequence,
        )

    def _fairness_rows(
        self, plan: MitigatePlan, train: pa.Table, held: pa.Table, ctx: OperationContext
    ) -> tuple[FairnessRows, FairnessRows, np.ndarray | None]:
        """The rows as the mitigator sees them, and the eval decisions before mitigation (the
        model's argmax, or score >= 0.5; None without a model or score column)."""
        spec = plan.spec
        post_processing = plan.mitigator.needs == "scores"
        fit_scores = self._scores(plan, train, plan.train, ctx)[0] if post_processing else None
        apply_scores, decisions = self._scores(plan, held, plan.eval, ctx)
        fit_features = apply_features = None
        if plan.features:
            encoding = FeatureEncoding.fit(train, plan.features)
            fit_features, apply_features = encoding.transform(train), encoding.transform(held)

        def rows(table: pa.Table, source: Rows, scores: Any, features: Any) -> FairnessRows:
            return FairnessRows(
                labels=_positives(table.column(source.label), plan.positive),
                groups=group_keys(table, spec.sensitive_columns),
                scores=scores if post_processing else None,
                features=features,
            )

        fit = rows(train, plan.train, fit_scores, fit_features)
        return fit, rows(held, plan.eval, apply_scores, apply_features), decisions

    def _scores(
        self, plan: MitigatePlan, table: pa.Table, source: Rows, ctx: OperationContext
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The rows' positive-class scores and the decisions they make (None, None when the
        request has neither a model nor a score column)."""
        if plan.model is not None:
            ctx.progress(0.1, f"scoring {table.num_rows} {source.field} rows with the model")
            return self._score(
                plan.model, table.column(source.text), plan.positive, plan.spec.max_length
            )
        if plan.spec.score_column:
            scores = _numbers(table.column(plan.spec.score_column))
            return scores, (scores >= 0.5).astype(int)
        return None, None

    def _commit(
        self,
        plan: MitigatePlan,
        held: pa.Table,
        decisions: np.ndarray,
        ctx: OperationContext,
        key: str,
    ) -> ArtifactRecord:
        """The eval rows with the mitigated decisions (as label values) as a dataset; the one
        committed before, when this operation runs again."""
        import pyarrow as pa

        done = self.datasets.find_upload(f"{key}/predictions")
        if done is not None:
            return done.record
        column = pa.array([plan.positive if d else plan.negative for d in decisions])
        try:  # the label column's own type where the labels' text converts back to it
            column = column.cast(held.schema.field(plan.eval.label).type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        if PREDICTION_COLUMN in held.column_names:
            held = held.drop_columns([PREDICTION_COLUMN])
        spec = plan.spec
        parents = [plan.train.dataset.id, plan.eval.dataset.id]
        if plan.model is not None:
            parents.append(plan.model.id)
        dataset = self.datasets.save(
            held.append_column(PREDICTION_COLUMN, column),
            name=plan.output_name,
            text_column=plan.eval.dataset.text_column,
            label_column=plan.eval.label,
            lineage=Lineage(
                parent_ids=parents,
                producer=f"{SERVICE}/MitigateFairness",
                operation=ctx.name,
                config={
                    "mitigator": plan.mitigator.name,
                    "mitigator_config": plan.mitigator.config.model_dump(mode="json"),
                    "sensitive_columns": list(spec.sensitive_columns),
                    "positive_label": plan.positive,
                    "model_id": spec.model_id,
                    "score_column": spec.score_column,
                    "feature_columns": list(plan.features),
                    "seed": spec.seed,
                },
            ),
            request_id=f"{key}/predictions",
        )
        return dataset.record

    # === the pieces =============================================================================

    def _model(self, model_id: str) -> ArtifactRecord:
        """A trained binary sequence classifier (model or adapter), or an error naming model_id."""
        record = self.models.model_record(model_id, "model_id")
        meta = record.metadata
        if meta.get("task") != SEQUENCE_CLASSIFICATION:
            raise InvalidArgument.for_field(
                "model_id", f"{record.id} is a {meta.get('task')} model, not a classifier"
            )
        if len(meta.get("labels", [])) != 2:
            raise InvalidArgument.for_field(
                "model_id",
                f"{record.id} has the labels {meta.get('labels', [])}; a fairness audit needs a "
                f"binary classifier",
            )
        return record

    def _rows(
        self, ref: DatasetRef, name: str, *, text: bool, default: tuple[str, str] = ("", "")
    ) -> Rows:
        """The dataset and its label column (and its text column, when ``text``), checked;
        ``default`` (text, label) fills what ``ref`` leaves empty before the dataset's own."""
        if text:
            dataset, text_column, label = self.datasets.resolve(
                ref, name, SEQUENCE_CLASSIFICATION, default=default
            )
            return Rows(dataset, label, text_column, name)
        if not ref.dataset_id:
            raise InvalidArgument.for_field(f"{name}.dataset_id", "a dataset is required")
        dataset = self.datasets.get(ref.dataset_id, f"{name}.dataset_id")
        columns = dataset.column_names
        label = ref.label_column or default[1] or dataset.label_column
        if not label:
            raise InvalidArgument.for_field(
                f"{name}.label_column",
                f"dataset {dataset.id} has no label column; name one of {columns}",
            )
        if label not in columns:
            raise InvalidArgument.for_field(
                f"{name}.label_column",
                f"no column {label!r} in dataset {dataset.id}; columns: {columns}",
            )
        return Rows(dataset, label, "", name)

    def _labels(self, rows: Rows, model: ArtifactRecord | None) -> list[str]:
        """The labels the rows may hold: the model's (the rows' must be among them), else the
        rows' own (at most two)."""
        if model is not None:
            known = [str(v) for v in model.metadata["labels"]]
            self.datasets.check_labels(
                rows.dataset, rows.label, known, rows.field, f"are unknown to model {model.id}"
            )
            return known
        labels = self.datasets.labels(rows.dataset, rows.label, rows.field, least=1)
        if len(labels) > 2:
            raise InvalidArgument.for_field(
                f"{rows.field}.label_column",
                f"column {rows.label!r} holds {len(labels)} labels {labels[:10]}; a fairness "
                f"audit needs binary labels",
            )
        return labels

    def _sensitive(self, columns: Sequence[str], sources: list[Rows]) -> None:
        """Every sensitive column exists in every dataset and the first splits it into at least
        two groups."""
        if not columns:
            raise InvalidArgument.for_field(
                "sensitive_columns",
                f"name the sensitive column(s); columns: {sources[0].dataset.column_names}",
            )
        for i, name in enumerate(columns):
            for rows in sources:
                if name not in rows.dataset.column_names:
                    raise InvalidArgument.for_field(
                        f"sensitive_columns[{i}]",
                        f"no column {name!r} in dataset {rows.dataset.id}; columns: "
                        f"{rows.dataset.column_names}",
                    )
        first = sources[0]
        groups = set(group_keys(self._read(first, columns), columns).tolist())
        if len(groups) < 2:
            raise InvalidArgument.for_field(
                "sensitive_columns",
                f"dataset {first.dataset.id} has only the group {sorted(groups)}; fairness is "
                f"measured between at least two",
            )

    def _check_decisions(self, rows: Rows, column: str, labels: list[str]) -> None:
        """Decisions hold no nulls and, when both labels occur, only label values (0/1
        decisions against "yes"/"no" labels would silently read as "never selected")."""
        values = self.datasets.read(rows.dataset, columns=[column]).column(0)
        if values.null_count:
            raise InvalidArgument.for_field(
                "prediction_column", f"{values.null_count} rows of {column!r} have no decision"
            )
        unknown = sorted({str(v) for v in values.to_pylist()} - set(labels))
        if len(labels) == 2 and unknown:
            raise InvalidArgument.for_field(
                "prediction_column",
                f"column {column!r} holds {unknown[:10]}, which are not labels of "
                f"{rows.label!r} (its labels: {labels})",
            )

    def _check_scores(self, rows: Rows, column: str) -> None:
        """A score column: numbers in [0, 1], one per row."""
        import numpy as np

        names = rows.dataset.column_names
        if column not in names:
            raise InvalidArgument.for_field(
                "score_column",
                f"no column {column!r} in dataset {rows.dataset.id}; columns: {names}",
            )
        values = self.datasets.read(rows.dataset, columns=[column]).column(0)
        if feature_kind(values.type) != "number":
            raise InvalidArgument.for_field(
                "score_column", f"column {column!r} is {values.type}, not numbers"
            )
        scores = _numbers(values)
        if not (np.isfinite(scores) & (scores >= 0) & (scores <= 1)).all():
            raise InvalidArgument.for_field(
                "score_column",
                f"column {column!r} of dataset {rows.dataset.id} must hold the positive "
                f"label's probability (in [0, 1]) on every row",
            )

    def _feature_columns(
        self, spec: MitigateSpec, train: Rows, evaluation: Rows
    ) -> tuple[str, ...]:
        """The named feature columns (each in both datasets, numbers or strings) or, when none
        are named, every such column but the label, text, sensitive and score ones."""
        train_types = _types(train.dataset)
        eval_types = _types(evaluation.dataset)
        if spec.feature_columns:
            for i, name in enumerate(spec.feature_columns):
                for rows, types in ((train, train_types), (evaluation, eval_types)):
                    if name not in types:
                        raise InvalidArgument.for_field(
                            f"feature_columns[{i}]",
                            f"no column {name!r} in dataset {rows.dataset.id}; columns: "
                            f"{list(types)}",
                        )
                    if not feature_kind(types[name]):
                        raise InvalidArgument.for_field(
                            f"feature_columns[{i}]",
                            f"column {name!r} is {types[name]}; features are numbers or strings",
                        )
            return tuple(spec.feature_columns)
        excluded = {
            train.label,
            evaluation.label,
            train.text,
            evaluation.text,
            train.dataset.text_column,
            evaluation.dataset.text_column,
            spec.score_column,
            PREDICTION_COLUMN,
            *spec.sensitive_columns,
        }
        chosen = tuple(
            name
            for name, arrow_type in train_types.items()
            if name not in excluded
            and name in eval_types
            and feature_kind(arrow_type)
            and feature_kind(eval_types[name])
        )
        if not chosen:
            raise InvalidArgument.for_field(
                "feature_columns",
                f"dataset {train.dataset.id} has no feature columns beside the label, text, "
                f"sensitive and score ones; name them",
            )
        return chosen

    def _read(self, rows: Rows, columns: Sequence[str]) -> pa.Table:
        """The label and text columns of the rows, and ``columns`` ("" skipped, each once)."""
        wanted = dict.fromkeys(c for c in (rows.label, rows.text, *columns) if c)
        return self.datasets.read(rows.dataset, columns=list(wanted))

    def _score(
        self, record: ArtifactRecord, texts: pa.ChunkedArray, positive: str, max_length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's probability of ``positive`` for every text and its decisions (argmax),
        as the training service scores it."""
        from forgeline.models import class_probabilities

        model, tokenizer, _ = self.models.load(record)
        probabilities = class_probabilities(
            model,
            tokenizer,
            [t or "" for t in texts.to_pylist()],
            batch_size=64,
            max_length=max_length or record.metadata.get("max_length", 128),
        )
        names = [str(model.config.id2label[i]) for i in range(probabilities.shape[1])]
        column = names.index(positive)
        return probabilities[:, column], (probabilities.argmax(axis=1) == column).astype(int)


def _positive(given: str, labels: list[str]) -> str:
    """The positive label: ``given``, which must be one of ``labels``, or "1" for 0/1 labels."""
    if given:
        if given not in labels:
            raise InvalidArgument.for_field(
                "positive_label", f"{given!r} is not among the labels {labels}"
            )
        return given
    if set(labels) <= {"0", "1"}:
        return "1"
    raise InvalidArgument.for_field(
        "positive_label",
        f"the labels are {labels}: name the favourable one (the outcome that is 'selected')",
    )


def _check_max_length(max_length: int) -> None:
    if max_length and not 8 <= max_length <= 65536:
        raise InvalidArgument.for_field("max_sequence_length", "must be 0 or in [8, 65536]")


def _types(dataset: Dataset) -> dict[str, str]:
    return dict(dataset.columns)


def _decisions(values: Any, n: int, plugin: str, what: str) -> np.ndarray:
    """A mitigator's 0/1 decisions, one per eval row (Internal when a plugin breaks that)."""
    import numpy as np

    decisions = np.asarray(values)
    if decisions.shape != (n,) or not np.isin(decisions, (0, 1)).all():
        raise Internal(
            f"mitigator {plugin} returned {what} that are not one 0/1 decision per eval row",
            reason="MITIGATOR_BROKEN",
        )
    return decisions.astype(np.int64)


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """A mitigator's details as plain JSON values (numpy numbers and arrays become lists and
    floats; anything else its text)."""
    return json.loads(
        json.dumps(details, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    )
