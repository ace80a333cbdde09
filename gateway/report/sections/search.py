"""Hyper-parameter searches (TuningService/TuneModel): every trial, its parameters and verdict,
the objective over trials and epochs, the parameters' importances and the Pareto front."""

from __future__ import annotations

import html
import json
from typing import Any

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, section, table
from forgeline.gateway.report.shapes import final, is_search, trial_number, trial_state


def section_searches(doc: dict) -> str:
    parts = []
    for step, _, result in found(doc, is_search):
        trials = sorted(result["trials"], key=trial_number)
        name, larger = _objective(result)
        best = result["best_trial"].get("id")
        front = set(result.get("pareto_front") or [])
        columns = _parameter_columns(trials)
        states = [trial_state(t) for t in trials]
        counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
        summary = (
            f"<p class=meta>{len(trials)} trials: {html.escape(counts)} · "
            f"{html.escape(name)}, {'larger' if larger else 'smaller'} is better · "
            f"★ best trial{' · ◆ on the Pareto front' if front else ''} · "
            f"{num(result.get('seconds'))} s</p>"
        )
        rows = table(
            ["trial", "state", *columns.values(), name, "epochs", "seconds"],
            [
                [
                    f"{trial_number(t)}{' ★' if t.get('id') == best else ''}"
                    f"{' ◆' if t.get('id') in front else ''}",
                    state,
                    *[_value(t["parameters"].get(p)) for p in columns],
                    num(final(t)),
                    num(t.get("iterations")),
                    num(t.get("seconds")),
                ]
                for t, state in zip(trials, states, strict=True)
            ],
        )
        drawn = [
            figure("Objective over trials", plots.trials_svg(trials, name, larger)),
            figure("Objective per epoch", plots.epochs_svg(trials, best, name)),
        ]
        importances = result.get("parameter_importances") or {}
        if importances:
            labels = {p: columns.get(p, p) for p in importances}
            drawn.append(figure("Parameter importance", plots.importances_svg(importances, labels)))
        completed = [t for t in trials if trial_state(t) == "completed"]
        if (
            front
            and name != "trainable_parameters"
            and completed
            and all("trainable_parameters" in t.get("metrics", {}) for t in completed)
        ):
            drawn.append(
                figure(
                    f"{name} against trainable parameters",
                    plots.pareto_svg(completed, front, name),
                )
            )
        parts.append(section(f"Hyper-parameter search — {step}", summary + rows + "".join(drawn)))
    return "".join(parts)


def _objective(result: dict) -> tuple[str, bool]:
    """A search's first objective and whether larger is better."""
    first = (result.get("objectives") or [{}])[0]
    return first.get("metric") or "objective", first.get("direction") != (
        "OBJECTIVE_DIRECTION_MINIMIZE"
    )


def _parameter_columns(trials: list[dict]) -> dict[str, str]:
    """The searched parameters by name (a Struct keeps no order), each with its column header:
    the last part of its dotted name ("hyper_parameters.learning_rate": "learning_rate"), or the
    whole name where two share it."""
    names = sorted({p for t in trials for p in t["parameters"]})
    last = [n.rsplit(".", 1)[-1] for n in names]
    return {n: s if last.count(s) == 1 else n for n, s in zip(names, last, strict=True)}


def _value(value: Any) -> str:
    """A parameter's value: numbers as ``num`` writes them, others as JSON ("" when unset)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return num(value)
    return value if isinstance(value, str) else json.dumps(value)
