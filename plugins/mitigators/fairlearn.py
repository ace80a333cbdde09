"""Fairness mitigations from fairlearn: per-group thresholds on a model's scores
(ThresholdOptimizer, post-processing) and a classifier trained under a fairness constraint
(ExponentiatedGradient, a reduction).

Both make randomized decisions (a row near a group's threshold is selected with some
probability); the seed fixes the draw, so the same seed gives the same predictions.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.mitigators import FairnessRows, MitigationResult, Mitigator
from forgeline.errors import InvalidArgument


def _values(rows: FairnessRows, where: str, need: str) -> tuple:
    """``rows``' groups (str) and ``need`` ("scores": 1-D, "features": 2-D) as float64, one
    of each per row."""
    import numpy as np

    n = len(rows)
    groups = np.asarray(rows.groups).astype(str)
    if groups.shape != (n,):
        raise InvalidArgument.for_field(f"{where}.groups", f"expected {n} group values")
    values = rows.scores if need == "scores" else rows.features
    if values is None:
        raise InvalidArgument.for_field(f"{where}.{need}", f"this mitigator needs {need}")
    values = np.asarray(values, dtype=np.float64)
    shape_ok = values.ndim == (1 if need == "scores" else 2) and len(values) == n
    if not shape_ok or not np.isfinite(values).all():
        raise InvalidArgument.for_field(f"{where}.{need}", f"expected finite {need} for {n} rows")
    return groups, values


def checked(fit: FairnessRows, need: str, *, both_classes: bool) -> tuple:
    """The rows a mitigation learns from as numpy arrays (labels int64, groups str, ``need``
    float64), after the checks every mitigation needs: binary 0/1 labels, at least two groups,
    both classes, and, when ``both_classes``, both in every group. InvalidArgument names
    ``fit.<field>``."""
    import numpy as np

    labels = np.asarray(fit.labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise InvalidArgument.for_field("fit.labels", "labels must be 0 or 1, one per row")
    groups, values = _values(fit, "fit", need)
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise InvalidArgument.for_field(
            "fit.groups", f"a fairness mitigation needs at least two groups, found {names}"
        )
    if len(set(labels.tolist())) < 2:
        raise InvalidArgument.for_field("fit.labels", "both classes must occur")
    for name in names if both_classes else ():
        present = set(labels[groups == name].tolist())
        if present != {0, 1}:
            missing = "positive" if 1 not in present else "negative"
            raise InvalidArgument.for_field(
                "fit.labels",
                f"group {name!r} has no {missing} rows; this constraint needs both classes in "
                f"every group",
            )
    return labels.astype(np.int64), groups, values


def random_state(seed: int) -> int:
    """A numpy legacy seed (0 .. 2**32-1) for any integer seed."""
    return seed % 2**32


def _number(value: float) -> float | str:
    """A JSON-able number: infinite thresholds ("select everyone") become "inf" / "-inf"."""
    value = float(value)
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def prefit_scores() -> Any:
    """A fitted scikit-learn classifier whose input is the score itself: column 0 of X is the
    probability of the positive class. ThresholdOptimizer thresholds a model's scores through
    it without retraining anything. (Built here so scikit-learn is imported only when used.)"""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class PrefitScores(ClassifierMixin, BaseEstimator):
        def __sklearn_is_fitted__(self) -> bool:
            return True

        def fit(self, X: Any, y: Any) -> PrefitScores:
            return self

        def predict_proba(self, X: Any) -> Any:
            scores = np.asarray(X, dtype=np.float64)[:, 0]
            return np.column_stack([1.0 - scores, scores])

        def predict(self, X: Any) -> Any:
            return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    return PrefitScores()


class ThresholdOptimizerMitigator(Mitigator):
    """Post-processes a model's scores with a threshold per group (fairlearn ThresholdOptimizer)
    so the chosen fairness constraint holds, keeping the objective as high as it can."""

    name = "threshold_optimizer"
    needs = "scores"

    class Config(PluginConfig):
        constraint: Literal[
            "demographic_parity",
            "equalized_odds",
            "true_positive_rate_parity",
            "false_positive_rate_parity",
            "true_negative_rate_parity",
            "false_negative_rate_parity",
        ] = Field(
            "demographic_parity",
            description="The fairness constraint: equal selection rates (demographic_parity), "
            "equal true and false positive rates (equalized_odds), or one rate equal.",
        )
        objective: Literal["accuracy_score", "balanced_accuracy_score"] = Field(
            "accuracy_score", description="What the thresholds maximise under the constraint."
        )
        grid_size: int = Field(
            1000, ge=10, le=100_000, description="Thresholds tried per group (the grid's size)."
        )
        tol: float | None = Field(
            None,
            ge=0.0,
            le=1.0,
            description="How far the constrained rate may differ between groups (None: exact "
            "parity). Not available for equalized_odds.",
        )
        flip: bool = Field(
            False, description="Also consider flipped decisions (score below the threshold)."
        )

        @model_validator(mode="after")
        def _exact_equalized_odds(self) -> ThresholdOptimizerMitigator.Config:
            if self.constraint == "equalized_odds" and self.tol is not None:
                raise ValueError("tol: equalized_odds takes no tolerance (fairlearn: exact only)")
            return self

    def mitigate(self, fit: FairnessRows, apply: FairnessRows, seed: int) -> MitigationResult:
        import numpy as np
        from fairlearn.postprocessing import ThresholdOptimizer

        cfg = self.config
        labels, groups, scores = checked(fit, "scores", both_classes=True)
        apply_groups, apply_scores = _values(apply, "apply", "scores")
        unknown = sorted(set(apply_groups.tolist()) - set(groups.tolist()))
        if unknown:
            raise InvalidArgument.for_field(
                "apply.groups", f"groups {unknown[:10]} do not occur in the rows fitted on"
            )
        optimizer = ThresholdOptimizer(
            estimator=prefit_scores(),
            constraints=cfg.constraint,
            objective=cfg.objective,
            grid_size=cfg.grid_size,
            flip=cfg.flip,
            prefit=True,
            predict_method="predict_proba",
            tol=cfg.tol,
        )
        optimizer.fit(scores[:, None], labels, sensitive_features=groups)
        predictions = (
            optimizer.predict(
                apply_scores[:, None],
                sensitive_features=apply_groups,
                random_state=random_state(seed),
            )
            if len(apply)
            else np.zeros(0, np.int64)
        )
        return MitigationResult(
            predictions=np.asarray(predictions, dtype=np.int64),
            details={
                "constraint": cfg.constraint,
                "objective": cfg.objective,
                "tol": cfg.tol,
                "groups": _rules(optimizer.interpolated_thresholder_.interpolation_dict),
            },
        )


def _rules(interpolation: dict) -> dict[str, dict[str, Any]]:
    """fairlearn's per-group interpolation as plain values: with probability p0 the decision is
    ``score <operator0> threshold0``, else with p1 the second rule; with probability p_ignore
    (when present) it is replaced by the constant."""
    out: dict[str, dict[str, Any]] = {}
    for group, rule in interpolation.items():
        summary: dict[str, Any] = {}
        for i in (0, 1):
            operation = rule[f"operation{i}"]
            summary[f"p{i}"] = float(rule[f"p{i}"])
            summary[f"operator{i}"] = operation.operator
            summary[f"threshold{i}"] = _number(operation.threshold)
        if "p_ignore" in rule:
            summary["p_ignore"] = float(rule["p_ignore"])
            summary["prediction_constant"] = float(rule["prediction_constant"])
        out[str(group)] = summary
    return out


_MOMENTS = {
    "demographic_parity": "DemographicParity",
    "equalized_odds": "EqualizedOdds",
    "true_positive_rate_parity": "TruePositiveRateParity",
    "error_rate_parity": "ErrorRateParity",
}


class ExponentiatedGradientMitigator(Mitigator):
    """Trains a logistic regression under a fairness constraint (fairlearn ExponentiatedGradient:
    a randomized mix of classifiers fitted on reweighted rows); reports the same learner without
    the constraint as the baseline."""

    name = "exponentiated_gradient"
    needs = "features"

    class Config(PluginConfig):
        constraint: Literal[
            "demographic_parity", "equalized_odds", "true_positive_rate_parity", "error_rate_parity"
        ] = Field("demographic_parity", description="The fairness constraint to train under.")
        eps: float = Field(
            0.01,
            gt=0.0,
            le=1.0,
            description="Allowed violation of the constraint (larger: fairer less strictly, "
            "more accurate).",
        )
        max_iter: int = Field(
            50, ge=1, le=1000, description="Iterations of the exponentiated gradient search."
        )
        C: float = Field(
            1.0, gt=0.0, description="Inverse regularisation strength of the logistic regression."
        )
        learner_max_iter: int = Field(
            500, ge=10, le=100_000, description="Solver iterations of each logistic regression."
        )

    def mitigate(self, fit: FairnessRows, apply: FairnessRows, seed: int) -> MitigationResult:
        import numpy as np
        from fairlearn import reductions
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        cfg = self.config
        both = cfg.constraint in ("equalized_odds", "true_positive_rate_parity")
        labels, groups, features = checked(fit, "features", both_classes=both)
        _, apply_features = _values(apply, "apply", "features")
        if apply_features.shape[1] != features.shape[1]:
            raise InvalidArgument.for_field(
                "apply.features",
                f"{apply_features.shape[1]} features per row, fitted on {features.shape[1]}",
            )
        scaler = StandardScaler().fit(features)
        x_fit, x_apply = scaler.transform(features), scaler.transform(apply_features)

        def learner() -> LogisticRegression:
            return LogisticRegression(C=cfg.C, max_iter=cfg.learner_max_iter)

        baseline = learner().fit(x_fit, labels)
        reduction = reductions.ExponentiatedGradient(
            learner(),
            constraints=getattr(reductions, _MOMENTS[cfg.constraint])(),
            eps=cfg.eps,
            max_iter=cfg.max_iter,
        )
        reduction.fit(x_fit, labels, sensitive_features=groups)
        empty = np.zeros(0, np.int64)
        weights = [float(w) for w in reduction.weights_ if w > 0]
        return MitigationResult(
            predictions=(
                np.asarray(
                    reduction.predict(x_apply, random_state=random_state(seed)), dtype=np.int64
                )
                if len(apply)
                else empty
            ),
            baseline=np.asarray(baseline.predict(x_apply), np.int64) if len(apply) else empty,
            details={
                "constraint": cfg.constraint,
                "eps": cfg.eps,
                "predictors": len(weights),
                "weights": weights,
                "best_gap": float(reduction.best_gap_),
            },
        )
