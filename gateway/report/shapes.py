"""The result shapes the report recognises in a step's response (proto JSON: zero fields may be
left out, int64 fields are strings), and how their parts read, for the sections and the plots.
"""

from __future__ import annotations

import math
from typing import Any


def is_evaluation(value: Any) -> bool:
    """An Evaluation: accuracy and a confusion matrix."""
    return isinstance(value, dict) and "accuracy" in value and "confusion_matrix" in value


def is_generation(value: Any) -> bool:
    """An Evaluation of generated text (EvaluateModel with ``generation``, a summarization
    baseline): the settings it generated with, or samples of its outputs."""
    if not isinstance(value, dict) or not isinstance(value.get("metrics", {}), dict):
        return False
    settings, samples = value.get("generation_settings"), value.get("samples")
    if isinstance(settings, dict) and settings:
        return True
    return (
        isinstance(samples, list)
        and bool(samples)
        and all(isinstance(s, dict) and "output" in s for s in samples)
    )


def is_cleaning(value: Any) -> bool:
    """A list of per-cleaner reports (cleaner, rows_in, rows_out)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(v, dict) and {"cleaner", "rows_in", "rows_out"} <= v.keys() for v in value
        )
    )


def is_search(value: Any) -> bool:
    """A hyper-parameter search result: trials with parameters and an objective history, and a
    best trial."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("best_trial"), dict)
        and isinstance(value.get("trials"), list)
        and bool(value["trials"])
        and all(
            isinstance(t, dict) and {"objective_history", "parameters"} <= t.keys()
            for t in value["trials"]
        )
    )


def is_compression(value: Any) -> bool:
    """A compression chain result: the original's measurement and the chain's steps, each with
    its compressor."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("original"), dict)
        and isinstance(value.get("steps"), list)
        and bool(value["steps"])
        and all(isinstance(s, dict) and "compressor" in s for s in value["steps"])
    )


def is_continual_update(value: Any) -> bool:
    """A continual update result: the memory's update history, each record with every task's
    accuracy, and the tasks scored."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("history"), list)
        and bool(value["history"])
        and all(
            isinstance(h, dict) and isinstance(h.get("accuracy"), dict) for h in value["history"]
        )
        and isinstance(value.get("tasks"), list)
        and bool(value["tasks"])
        and all(isinstance(t, dict) and "task" in t for t in value["tasks"])
    )


def is_profile(value: Any) -> bool:
    """A DatasetProfile: label counts or text lengths, with its row count or duplicate rate."""
    return (
        isinstance(value, dict)
        and (
            isinstance(value.get("label_counts"), dict)
            or isinstance(value.get("text_length"), dict)
        )
        and any(k in value for k in ("num_rows", "duplicate_rate", "null_counts"))
    )


def is_fairness_metrics(value: Any) -> bool:
    """A FairnessMetrics message: overall metrics and groups."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("groups"), list)
        and bool(value["groups"])
        and all(isinstance(g, dict) and "group" in g for g in value["groups"])
    )


def is_fairness(value: Any) -> bool:
    """A fairness audit (``metrics``) or mitigation (``before`` and ``after``)."""
    return isinstance(value, dict) and (
        is_fairness_metrics(value.get("metrics"))
        or (is_fairness_metrics(value.get("before")) and is_fairness_metrics(value.get("after")))
    )


def label(value: str, prefix: str) -> str:
    """An enum's name as people read it: "TRIAL_STATE_STOPPED_EARLY" -> "stopped early"."""
    return value.removeprefix(prefix).lower().replace("_", " ") or "unspecified"


# --- a search's trials -------------------------------------------------------------------------


def trial_number(trial: dict) -> int:
    return int(trial.get("number", 0) or 0)


def trial_state(trial: dict) -> str:
    """A trial's state as people read it: completed, stopped early, failed, cancelled."""
    return label(trial.get("state", ""), "TRIAL_STATE_")


def history(trial: dict) -> list[float]:
    """A trial's objective after each epoch (NaN where it reported none)."""
    return [float(v) for v in trial.get("objective_history", [])]  # float("NaN") reads "NaN"


def final(trial: dict) -> float | None:
    """A trial's objective after its last epoch, None without a finite one."""
    values = history(trial)
    return values[-1] if values and math.isfinite(values[-1]) else None


def finals(trials: list[dict], state: str) -> list[tuple[int, float]]:
    """(number, final objective) of the trials in ``state`` that have one, by number."""
    return sorted(
        (trial_number(t), y)
        for t in trials
        if trial_state(t) == state and (y := final(t)) is not None
    )


# --- a compression chain's steps and a memory's updates ----------------------------------------


def compression_label(step: dict) -> str:
    return f"{int(step.get('index', 0) or 0)} {step['compressor']}"


def update_number(record: dict) -> int:
    return int(record.get("update", 0) or 0)


def update_kept(record: dict) -> bool:
    """Whether an update record's model became the memory's: promoted, or update 0 (the model
    the first update started from)."""
    return bool(record.get("promoted")) or update_number(record) == 0
