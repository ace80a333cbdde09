"""A run's report: a JSON document with every metric, series and artifact of the run, and a
self-contained HTML page drawn from it (inline SVG plots, no script, no external resource).

The JSON twin is built from the run (its steps' responses, metrics and gates) and the events its
steps streamed; the page is rendered from the JSON alone, so a report can be re-rendered later.
Plots come from *sections*: a section looks for a shape in the document (an Evaluation with a
confusion matrix, a cleaning report with rows in and out per cleaner, metric series per training
step) wherever a step's response holds it, so a new service's results join the report by adding a
section here, with no change to the orchestrator.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from google.protobuf import json_format

from forgeline.artifacts import Lineage
from forgeline.gateway.spec import number

REPORT_HTML, REPORT_JSON = "report.html", "report.json"
MAX_POINTS = 2000  # per series in the page; the JSON keeps every point
SMOOTH_FROM = 50  # series longer than this are drawn smoothed over the raw values


# --- the JSON twin -----------------------------------------------------------------------------


def document(run, events: Iterable, audit_head: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's JSON: ``run`` (a PipelineRun) and the step events of the run, and the audit
    log's head after the run (``forgeline.audit.AuditHead.as_dict()``; None without a log): a
    copy kept away from the log's host, so a later ``forgeline audit verify --expect-head``
    catches the log truncated or rewritten up to this run."""
    as_dict = json_format.MessageToDict(
        run, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    steps = []
    for step in as_dict.get("steps", []):
        steps.append(
            {
                "name": step["name"],
                "call": step.get("call", ""),
                "method": step.get("method", ""),
                "state": step.get("state", "").removeprefix("STEP_STATE_"),
                "cached": step.get("cached", False),
                "depends_on": step.get("depends_on", []),
                "seconds": _seconds(step.get("start_time"), step.get("end_time")),
                "message": step.get("message", ""),
                "metrics": step.get("metrics", {}),
                "gates": step.get("gates", []),
                "response": step.get("response", {}),
            }
        )
    series: dict[str, dict[str, list[list[float]]]] = {}
    for event in events:
        if not event.step or not event.HasField("metrics"):
            continue
        for point in event.metrics.points:
            if point.step > 0:
                series.setdefault(event.step, {}).setdefault(point.name, []).append(
                    [point.step, point.value]
                )
    return {
        "kind": "forgeline/report",
        "version": 1,
        "run": as_dict.get("name", ""),
        "pipeline": as_dict.get("pipeline", ""),
        "state": as_dict.get("state", "").removeprefix("OPERATION_STATE_"),
        "message": as_dict.get("message", ""),
        "attempt": as_dict.get("attempt", 1),
        "create_time": as_dict.get("create_time", ""),
        "end_time": as_dict.get("end_time", ""),
        "overrides": as_dict.get("overrides", []),
        "pipeline_yaml": as_dict.get("pipeline_yaml", ""),
        "steps": steps,
        "series": series,
        "artifacts": list(_artifacts(steps)),
        "audit_head": audit_head,
    }


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    from google.protobuf import timestamp_pb2

    a, b = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    a.FromJsonString(start)
    b.FromJsonString(end)
    return round((b.ToNanoseconds() - a.ToNanoseconds()) / 1e9, 3)


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) in a JSON value, parents before children."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _artifacts(steps: list[dict]) -> Iterator[dict[str, Any]]:
    """The artifacts the steps produced, with their lineage (an Artifact message has an id, a
    uri and a digest)."""
    seen = set()
    for step in steps:
        for path, value in _walk(step["response"]):
            if not (isinstance(value, dict) and {"id", "uri", "sha256"} <= value.keys()):
                continue
            if not value["id"] or value["id"] in seen:
                continue
            seen.add(value["id"])
            lineage = value.get("lineage", {})
            yield {
                "step": step["name"],
                "field": path,
                "id": value["id"],
                "kind": value.get("kind", "").removeprefix("ARTIFACT_KIND_").lower(),
                "uri": value["uri"],
                "sha256": value["sha256"],
                "size_bytes": int(value.get("size_bytes", 0) or 0),
                "parent_ids": lineage.get("parent_ids", []),
                "producer": lineage.get("producer", ""),
            }


# --- sections: what the page shows, found by shape -------------------------------------------


def _evaluations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    """(step, path, evaluation) for every Evaluation-shaped value in a step's response."""
    for step in doc["steps"]:
        for path, value in _walk(step["response"]):
            if isinstance(value, dict) and "accuracy" in value and "confusion_matrix" in value:
                yield step["name"], path, value


def _cleaning(doc: dict) -> Iterator[tuple[str, list[dict]]]:
    """(step, reports) for every list of per-cleaner reports (cleaner, rows_in, rows_out)."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if (
                isinstance(value, list)
                and value
                and all(
                    isinstance(v, dict) and {"cleaner", "rows_in", "rows_out"} <= v.keys()
                    for v in value
                )
            ):
                yield step["name"], value


def _searches(doc: dict) -> Iterator[tuple[str, dict]]:
    """(step, result) for every hyper-parameter search result (trials with parameters and an
    objective history, and a best trial) in a step's response."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if (
                isinstance(value, dict)
                and isinstance(value.get("best_trial"), dict)
                and isinstance(value.get("trials"), list)
                and value["trials"]
                and all(
                    isinstance(t, dict) and {"objective_history", "parameters"} <= t.keys()
                    for t in value["trials"]
                )
            ):
                yield step["name"], value


def _compressions(doc: dict) -> Iterator[tuple[str, dict]]:
    """(step, result) for every compression chain result (the original's measurement and the
    chain's steps, each with its compressor) in a step's response."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if (
                isinstance(value, dict)
                and isinstance(value.get("original"), dict)
                and isinstance(value.get("steps"), list)
                and value["steps"]
                and all(isinstance(s, dict) and "compressor" in s for s in value["steps"])
            ):
                yield step["name"], value


def _continual_updates(doc: dict) -> Iterator[tuple[str, dict]]:
    """(step, result) for every continual update result (the memory's update history, each
    record with every task's accuracy, and the tasks scored) in a step's response."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if (
                isinstance(value, dict)
                and isinstance(value.get("history"), list)
                and value["history"]
                and all(
                    isinstance(h, dict) and isinstance(h.get("accuracy"), dict)
                    for h in value["history"]
                )
                and isinstance(value.get("tasks"), list)
                and value["tasks"]
                and all(isinstance(t, dict) and "task" in t for t in value["tasks"])
            ):
                yield step["name"], value


def _fairness_metrics(value: Any) -> bool:
    """Whether ``value`` is a FairnessMetrics message as JSON (overall metrics and groups)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("groups"), list)
        and bool(value["groups"])
        and all(isinstance(g, dict) and "group" in g for g in value["groups"])
    )


def _fairness(doc: dict) -> Iterator[tuple[str, dict]]:
    """(step, result) for every fairness audit (``metrics``) or mitigation (``before`` and
    ``after``) in a step's response."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if isinstance(value, dict) and (
                _fairness_metrics(value.get("metrics"))
                or (
                    _fairness_metrics(value.get("before")) and _fairness_metrics(value.get("after"))
                )
            ):
                yield step["name"], value


def section_evaluations(doc: dict) -> str:
    rows = list(_evaluations(doc))
    if not rows:
        return ""
    table = _table(
        ["step", "examples", "accuracy", "F1 (macro)", "loss"],
        [
            [
                step,
                f"{int(e.get('num_examples', 0) or 0):,}",
                _num(e.get("accuracy")),
                _num(e.get("f1_macro")),
                _num(e.get("loss")),
            ]
            for step, _, e in rows
        ],
    )
    plots = []
    for step, _, evaluation in rows:
        matrix = evaluation.get("confusion_matrix") or {}
        labels, counts = matrix.get("labels", []), [int(c) for c in matrix.get("counts", [])]
        if labels and len(counts) == len(labels) ** 2:
            plots.append(_figure(f"Confusion matrix — {step}", _confusion_svg(labels, counts)))
    return _section("Evaluation", table + "".join(plots))


def section_curves(doc: dict) -> str:
    parts = []
    searched = {step for step, _ in _searches(doc)}  # section_searches draws their series
    for step, metrics in doc["series"].items():
        if step in searched:
            continue
        names = [n for n, points in metrics.items() if len(points) >= 2]
        if names:
            parts.append(
                _figure(f"Metrics per training step — {step}", _curves_svg(metrics, names))
            )
    return _section("Training curves", "".join(parts)) if parts else ""


def section_cleaning(doc: dict) -> str:
    parts = []
    for step, reports in _cleaning(doc):
        table = _table(
            ["cleaner", "rows in", "rows out", "removed", "seconds"],
            [
                [
                    r["cleaner"],
                    f"{int(r['rows_in']):,}",
                    f"{int(r['rows_out']):,}",
                    f"{int(r['rows_in']) - int(r['rows_out']):,}",
                    _num(r.get("seconds")),
                ]
                for r in reports
            ],
        )
        parts.append(_figure(f"Cleaning funnel — {step}", _funnel_svg(reports)) + table)
    return _section("Data cleaning", "".join(parts)) if parts else ""


def section_searches(doc: dict) -> str:
    parts = []
    for step, result in _searches(doc):
        trials = sorted(result["trials"], key=_trial_number)
        name, larger = _objective(result)
        best = result["best_trial"].get("id")
        front = set(result.get("pareto_front") or [])
        columns = _parameter_columns(trials)
        states = [_trial_state(t) for t in trials]
        counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
        summary = (
            f"<p class=meta>{len(trials)} trials: {html.escape(counts)} · "
            f"{html.escape(name)}, {'larger' if larger else 'smaller'} is better · "
            f"★ best trial{' · ◆ on the Pareto front' if front else ''} · "
            f"{_num(result.get('seconds'))} s</p>"
        )
        table = _table(
            ["trial", "state", *columns.values(), name, "epochs", "seconds"],
            [
                [
                    f"{_trial_number(t)}{' ★' if t.get('id') == best else ''}"
                    f"{' ◆' if t.get('id') in front else ''}",
                    state,
                    *[_value(t["parameters"].get(p)) for p in columns],
                    _num(_final(t)),
                    _num(t.get("iterations")),
                    _num(t.get("seconds")),
                ]
                for t, state in zip(trials, states, strict=True)
            ],
        )
        plots = [
            _figure("Objective over trials", _trials_svg(trials, name, larger)),
            _figure("Objective per epoch", _epochs_svg(trials, best, name)),
        ]
        importances = result.get("parameter_importances") or {}
        if importances:
            labels = {p: columns.get(p, p) for p in importances}
            plots.append(_figure("Parameter importance", _importances_svg(importances, labels)))
        completed = [t for t in trials if _trial_state(t) == "completed"]
        if (
            front
            and name != "trainable_parameters"
            and completed
            and all("trainable_parameters" in t.get("metrics", {}) for t in completed)
        ):
            plots.append(
                _figure(
                    f"{name} against trainable parameters",
                    _pareto_svg(completed, front, name),
                )
            )
        parts.append(_section(f"Hyper-parameter search — {step}", summary + table + "".join(plots)))
    return "".join(parts)


def section_compression(doc: dict) -> str:
    parts = []
    for step, result in _compressions(doc):
        steps = sorted(result["steps"], key=lambda s: int(s.get("index", 0) or 0))
        metric = result.get("budget_metric") or "accuracy"
        outcomes = [_label(s.get("outcome", ""), "STEP_OUTCOME_") for s in steps]
        summary = (
            f"<p class=meta>{len(steps)} steps: "
            + ", ".join(f"{outcomes.count(o)} {o}" for o in ("kept", "rolled back", "skipped"))
            + f" · budget {float(result.get('accuracy_budget', 0)) * 100:.2f} points of "
            f"{html.escape(metric)}{' · budget exceeded' if result.get('budget_exceeded') else ''}"
            f" · final size ×{_num(result.get('size_ratio', 0))}, latency "
            f"×{_num(result.get('latency_ratio', 0))}, {html.escape(metric)} "
            f"{_points(result.get('accuracy_delta', 0))} points · "
            f"{_num(result.get('seconds', 0))} s</p>"
        )
        table = _table(
            [
                *("step", "outcome", "format", "size", "size ratio", "Linear-weights ratio"),
                *("p50 ms", "p95 ms", "throughput/s", "batch latency ratio", "accuracy", "F1"),
                *(f"Δ {metric} (points)", "reason"),
            ],
            [_compression_row("original", "", result["original"], {})]
            + [
                _compression_row(_compression_label(s), o, s.get("measurement"), s)
                for s, o in zip(steps, outcomes, strict=True)
            ],
        )
        plot = _figure(
            f"{metric} against latency and size, one point per step",
            _tradeoff_svg(result, steps, outcomes, metric),
        )
        parts.append(_section(f"Compression — {step}", summary + table + plot))
    return "".join(parts)


def _compression_label(step: dict) -> str:
    return f"{int(step.get('index', 0) or 0)} {step['compressor']}"


def _compression_row(label: str, outcome: str, m: dict | None, step: dict) -> list[str]:
    """A table row: a Measurement's cells, and a step's ratios and verdict against the original
    (blank where the step has no measurement: skipped)."""
    m, ratios = m or {}, step if m else {}
    return [
        label,
        outcome,
        m.get("format", ""),
        _size(int(float(m.get("weights_bytes", 0)))) if m else "",
        _num(ratios.get("size_ratio")),
        _num(ratios.get("linear_size_ratio")),
        _num(m.get("latency_p50_ms")),
        _num(m.get("latency_p95_ms")),
        _num(m.get("throughput")),
        _num(ratios.get("batch_latency_ratio")),
        _num(m.get("accuracy")),
        _num(m.get("f1_macro")),
        _points(ratios.get("accuracy_delta", 0)) if ratios else "",
        step.get("reason", ""),
    ]


def section_continual(doc: dict) -> str:
    parts = []
    for step, result in _continual_updates(doc):
        task = html.escape(result.get("task", ""))
        verdict = (
            '<span class="state succeeded">promoted</span>'
            if result.get("promoted")
            else '<span class="state failed">not promoted</span>'
        )
        new, selected, replayed, added = (
            int(result.get(k, 0) or 0)
            for k in ("new_rows", "selected_rows", "replayed_rows", "added_samples")
        )
        summary = (
            f"<p class=meta>{verdict} {html.escape(result.get('reason', ''))} · task {task} "
            f"learned · forgetting {float(result.get('forgetting', 0)) * 100:.2f} points (max "
            f"{float(result.get('max_forgetting', 0)) * 100:.2f}) · backward transfer "
            f"{_points(result.get('backward_transfer', 0))} points · {task} accuracy "
            f"{_num(result.get('new_task_accuracy_before', 0))} → "
            f"{_num(result.get('new_task_accuracy', 0))} · rows: {new:,} new / {selected:,} "
            f"selected / {replayed:,} replayed / {added:,} added to the memory · "
            f"{_num(result.get('seconds', 0))} s</p>"
        )
        table = _table(
            ["task", "before", "after", "change (points)", "accuracy when learned", "examples"],
            [
                [
                    f"{t['task']}{' (new)' if t.get('new') else ''}",
                    _num(t.get("before", 0)),
                    _num(t.get("after", 0)),
                    _points(float(t.get("after", 0)) - float(t.get("before", 0))),
                    _num(t.get("learned", 0)),
                    f"{int(t.get('examples', 0) or 0):,}",
                ]
                for t in result["tasks"]
            ],
        )
        plot = _figure(
            "per-task accuracy over successive updates", _continual_svg(result["history"])
        )
        parts.append(_section(f"Continual learning — {step}", summary + table + plot))
    return "".join(parts)


def section_fairness(doc: dict) -> str:
    parts = []
    for step, result in _fairness(doc):
        checks = result.get("checks") or []
        verdict = (
            ""
            if not checks
            else '<span class="state succeeded">passed</span> '
            if int(result.get("passed", 0) or 0)
            else '<span class="state failed">failed</span> '
        )
        failed = [c for c in checks if not c.get("passed")]
        summary = verdict + "; ".join(
            f"{c['metric']} {_num(c.get('value', 0))} (must be {c['op']} {_num(c['threshold'])})"
            for c in (failed or checks)
        )
        columns = ["group", "count", "accuracy", "selection rate", "FPR", "FNR"]
        if "metrics" in result:
            metrics = result["metrics"]
            runs = [("", metrics)]
            title = f"Fairness audit — {step}"
            summary += (
                f" · {html.escape(str(result.get('subject', '')))} on "
                f"{html.escape(', '.join(result.get('sensitive_columns') or []))}"
            )
        else:
            runs = [("before", result["before"]), ("after", result["after"])]
            title = f"Fairness mitigation — {step}"
            summary += (
                f" · accuracy {_points(result.get('accuracy_delta', 0))} points, demographic "
                f"parity difference {_points(result.get('demographic_parity_difference_delta', 0))}"
                " points"
            )
        overall = _table(
            ["", "accuracy", "selection rate", "DP difference", "DP ratio", "EO difference"],
            [
                [
                    label or "overall",
                    _num(m.get("accuracy", 0)),
                    _num(m.get("selection_rate", 0)),
                    _num(m.get("demographic_parity_difference", 0)),
                    _num(m.get("demographic_parity_ratio", 0)),
                    _num(m.get("equalized_odds_difference", 0)),
                ]
                for label, m in runs
            ],
        )
        groups = _table(
            ([""] if len(runs) > 1 else []) + columns,
            [
                ([label] if len(runs) > 1 else [])
                + [
                    g.get("group", ""),
                    f"{int(g.get('count', 0) or 0):,}",
                    _num(g.get("accuracy", 0)),
                    _num(g.get("selection_rate", 0)),
                    _num(g.get("false_positive_rate", 0)),
                    _num(g.get("false_negative_rate", 0)),
                ]
                for label, m in runs
                for g in m["groups"]
            ],
        )
        plot = _figure("per-group rates", _fairness_svg(runs))
        parts.append(_section(title, f"<p class=meta>{summary}</p>" + overall + groups + plot))
    return "".join(parts)


def _update_number(record: dict) -> int:
    return int(record.get("update", 0) or 0)


def _update_kept(record: dict) -> bool:
    """Whether an update record's model became the memory's: promoted, or update 0 (the model
    the first update started from)."""
    return bool(record.get("promoted")) or _update_number(record) == 0


def _points(fraction: Any) -> str:
    """A change of accuracy (a fraction) in signed points: -0.004 -> "-0.40"."""
    return f"{float(fraction) * 100:+.2f}"


def _trial_number(trial: dict) -> int:
    return int(trial.get("number", 0) or 0)


def _trial_state(trial: dict) -> str:
    """A trial's state as people read it: completed, stopped early, failed, cancelled."""
    return _label(trial.get("state", ""), "TRIAL_STATE_")


def _label(value: str, prefix: str) -> str:
    """An enum's name as people read it: "TRIAL_STATE_STOPPED_EARLY" -> "stopped early"."""
    return value.removeprefix(prefix).lower().replace("_", " ") or "unspecified"


def _history(trial: dict) -> list[float]:
    """A trial's objective after each epoch (NaN where it reported none)."""
    return [float(v) for v in trial.get("objective_history", [])]  # float("NaN") reads "NaN"


def _final(trial: dict) -> float | None:
    """A trial's objective after its last epoch, None without a finite one."""
    history = _history(trial)
    return history[-1] if history and math.isfinite(history[-1]) else None


def _finals(trials: list[dict], state: str) -> list[tuple[int, float]]:
    """(number, final objective) of the trials in ``state`` that have one, by number."""
    return sorted(
        (_trial_number(t), y)
        for t in trials
        if _trial_state(t) == state and (y := _final(t)) is not None
    )


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
    """A parameter's value: numbers as ``_num`` writes them, others as JSON ("" when unset)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _num(value)
    return value if isinstance(value, str) else json.dumps(value)


# A later service adds its section here (fairness bars, ...).
SECTIONS: list[Callable[[dict], str]] = [
    section_evaluations,
    section_curves,
    section_cleaning,
    section_searches,
    section_compression,
    section_continual,
    section_fairness,
]


# --- the page ----------------------------------------------------------------------------------


def render(doc: dict) -> str:
    """The self-contained HTML page of a report document."""
    state = doc["state"]
    steps = _table(
        ["step", "call", "state", "cached", "seconds", "metrics", "message"],
        [
            [
                s["name"],
                s["call"],
                f'<span class="state {s["state"].lower()}">{html.escape(s["state"])}</span>',
                "yes" if s["cached"] else "",
                _num(s["seconds"]),
                ", ".join(f"{k} {_num(v)}" for k, v in sorted(s["metrics"].items())[:6]),
                s["message"],
            ]
            for s in doc["steps"]
        ],
        raw_columns={2},
    )
    gates = [
        [
            s["name"],
            g.get("expression", ""),
            '<span class="state succeeded">pass</span>'
            if g.get("passed")
            else '<span class="state failed">FAIL</span>',
            g.get("message", ""),
        ]
        for s in doc["steps"]
        for g in s["gates"]
    ]
    artifacts = _table(
        ["step", "artifact", "kind", "size", "made from", "uri"],
        [
            [
                a["step"],
                a["id"],
                a["kind"],
                _size(a["size_bytes"]),
                ", ".join(a["parent_ids"]),
                a["uri"],
            ]
            for a in doc["artifacts"]
        ],
    )
    body = [
        f"<h1>{html.escape(doc['pipeline'])} "
        f'<span class="state {state.lower()}">{html.escape(state)}</span></h1>',
        f"<p class=meta>run {html.escape(doc['run'])} · attempt {doc['attempt']} · "
        f"{html.escape(doc['create_time'])} → {html.escape(doc['end_time'])}</p>",
        f"<p>{html.escape(doc['message'])}</p>",
        _audit_head(doc.get("audit_head")),
        _section("Steps", steps),
        _section("Gates", _table(["step", "gate", "verdict", "why"], gates, raw_columns={2}))
        if gates
        else "",
        *[section(doc) for section in SECTIONS],
        _section("Artifacts and lineage", artifacts) if doc["artifacts"] else "",
        "<details><summary>Pipeline</summary><pre>"
        + html.escape(doc["pipeline_yaml"])
        + "</pre></details>",
    ]
    return PAGE.format(title=html.escape(f"{doc['pipeline']} · {doc['run']}"), body="\n".join(body))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2330; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; }} h2 {{ margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }}
th, td {{ text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eee;
         vertical-align: top; }}
th {{ background: #f5f6f8; }} .meta {{ color: #667; }}
.state {{ padding: .05rem .45rem; border-radius: .6rem; font-size: .85em; background: #eee; }}
.succeeded {{ background: #d8f3dc; }} .failed {{ background: #fde2e1; }}
.cancelled {{ background: #fff3c4; }} .skipped {{ color: #888; }}
figure {{ margin: 1rem 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
figure svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f5f6f8; padding: .8rem; overflow: auto; }}
</style></head>
<body>
{body}
</body></html>
"""


def _audit_head(head: dict[str, Any] | None) -> str:
    if not head:
        return ""
    if "expect_head" not in head:
        return f"<p class=meta>audit log head unknown: {html.escape(str(head.get('error')))}</p>"
    pending = f" ({head['pending']} events not yet delivered)" if head.get("pending") else ""
    return (
        "<p class=meta>audit log head after this run: "
        f"<code>{html.escape(head['expect_head'])}</code>{pending}; keep it to check the log "
        "later with <code>forgeline audit verify --expect-head</code></p>"
    )


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{content}</section>"


def _figure(caption: str, svg: str) -> str:
    return f'<figure class="plot"><figcaption>{html.escape(caption)}</figcaption>{svg}</figure>'


def _table(header: list[str], rows: list[list[Any]], raw_columns: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c if i in raw_columns else html.escape(str(c))}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: Any) -> str:
    if value is None or value == "":
        return ""
    return number(value, grouped=True)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --- plots (matplotlib, Agg, inline SVG) -------------------------------------------------------


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits in HTML


def _new_figure(width: float, height: float):
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    matplotlib.rcParams["svg.hashsalt"] = "forgeline"  # stable ids: the same run, the same page
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _curves_svg(metrics: dict[str, list[list[float]]], names: list[str]) -> str:
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _new_figure(4.0 * columns, 2.6 * rows)
    for i, name in enumerate(sorted(names, key=_metric_order)):
        axes = figure.add_subplot(rows, columns, i + 1)
        points = sorted(metrics[name])
        stride = max(1, len(points) // MAX_POINTS)
        xs = [p[0] for p in points[::stride]]
        ys = [p[1] for p in points[::stride]]
        if len(ys) > SMOOTH_FROM:  # noisy per-batch values: faint raw line, smoothed on top
            axes.plot(xs, ys, linewidth=0.8, alpha=0.3, color="#4c78a8")
            axes.plot(xs, _ema(ys), linewidth=1.5, color="#4c78a8")
        else:
            axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color="#4c78a8")
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    return _svg(figure)


def _ema(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, bias-corrected (as TensorBoard smooths)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def _metric_order(name: str) -> tuple[int, str]:
    for rank, word in enumerate(("loss", "accuracy", "f1", "learning_rate")):
        if word in name:
            return rank, name
    return 9, name


def _confusion_svg(labels: list[str], counts: list[int]) -> str:
    n = len(labels)
    figure = _new_figure(1.2 + 0.9 * n, 1.0 + 0.8 * n)
    axes = figure.add_subplot()
    grid = [counts[r * n : (r + 1) * n] for r in range(n)]
    axes.imshow(grid, cmap="Blues")
    top = max(counts) or 1
    for r in range(n):
        for c in range(n):
            axes.text(
                c,
                r,
                f"{grid[r][c]:,}",
                ha="center",
                va="center",
                color="white" if grid[r][c] > top / 2 else "black",
            )
    axes.set_xticks(range(n), labels, rotation=30 if n > 4 else 0)
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    return _svg(figure)


def _funnel_svg(reports: list[dict]) -> str:
    names = ["input"] + [r["cleaner"] for r in reports]
    rows = [int(reports[0]["rows_in"])] + [int(r["rows_out"]) for r in reports]
    figure = _new_figure(7.0, 0.5 + 0.45 * len(names))
    axes = figure.add_subplot()
    positions = list(range(len(names)))[::-1]
    axes.barh(positions, rows, color="#4c78a8")
    for y, value in zip(positions, rows, strict=True):
        axes.text(value, y, f" {value:,}", va="center", fontsize=9)
    axes.set_yticks(positions, names)
    axes.set_xlabel("rows after the cleaner")
    axes.set_xlim(0, max(rows) * 1.18 or 1)
    return _svg(figure)


def _plot(width: float, height: float, xlabel: str, ylabel: str):
    """A figure with one set of axes, labelled and gridded as the report's plots are."""
    figure = _new_figure(width, height)
    return figure, _labelled(figure.add_subplot(), xlabel, ylabel)


def _labelled(axes, xlabel: str, ylabel: str):
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    return axes


def _trials_svg(trials: list[dict], name: str, larger: bool) -> str:
    """Each finished trial's objective by trial number (completed filled, stopped early hollow,
    failed left out) and the best completed one so far as a step line."""
    figure, axes = _plot(7.0, 3.2, "trial", name)
    for state, face in (("completed", "#4c78a8"), ("stopped early", "none")):
        if points := _finals(trials, state):
            xs, ys = zip(*points, strict=True)
            axes.scatter(xs, ys, s=36, facecolors=face, edgecolors="#4c78a8", label=state, zorder=3)
    if completed := _finals(trials, "completed"):
        pick = max if larger else min
        running = [pick(y for _, y in completed[: i + 1]) for i in range(len(completed))]
        axes.step(
            [x for x, _ in completed], running, where="post", color="#f58518", label="best so far"
        )
    axes.xaxis.get_major_locator().set_params(integer=True)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    return _svg(figure)


def _epochs_svg(trials: list[dict], best: str | None, name: str) -> str:
    """Each trial's objective after every epoch: the best trial bold, those stopped early (or
    failed) faint, so the scheduler's early stops show."""
    figure, axes = _plot(7.0, 3.2, "epoch", name)
    for trial in trials:
        history = _history(trial)
        if not history:
            continue
        epochs = range(1, len(history) + 1)
        if trial.get("id") == best:
            axes.plot(
                epochs,
                history,
                marker="o",
                markersize=4,
                linewidth=2.2,
                color="#f58518",
                label=f"best (trial {_trial_number(trial)})",
                zorder=3,
            )
        else:
            done = _trial_state(trial) == "completed"
            axes.plot(
                epochs,
                history,
                marker="o",
                markersize=3,
                linewidth=1.2,
                color="#4c78a8",
                alpha=0.8 if done else 0.3,
            )
    axes.xaxis.get_major_locator().set_params(integer=True)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    return _svg(figure)


def _importances_svg(importances: dict[str, float], labels: dict[str, str]) -> str:
    """The parameters' importances as horizontal bars, the largest on top."""
    ordered = sorted(importances.items(), key=lambda item: (item[1], item[0]))
    figure, axes = _plot(7.0, 0.6 + 0.4 * len(ordered), "importance", "")
    positions = range(len(ordered))
    axes.barh(positions, [float(v) for _, v in ordered], color="#4c78a8")
    for y, (_, value) in zip(positions, ordered, strict=True):
        axes.text(float(value), y, f" {_num(value)}", va="center", fontsize=9)
    axes.set_yticks(positions, [labels[p] for p, _ in ordered])
    axes.set_xlim(0, max(float(v) for _, v in ordered) * 1.18 or 1)
    return _svg(figure)


def _pareto_svg(completed: list[dict], front: set[str], name: str) -> str:
    """The completed trials' objective against their trainable parameters, each labelled with its
    number, the Pareto front's highlighted."""
    figure, axes = _plot(7.0, 3.2, "trainable parameters", name)
    for trial in completed:
        x, y = float(trial["metrics"]["trainable_parameters"]), _final(trial)
        if y is None:
            continue
        on_front = trial.get("id") in front
        axes.scatter(x, y, s=48 if on_front else 30, color="#f58518" if on_front else "#4c78a8")
        axes.annotate(f" {_trial_number(trial)}", (x, y), fontsize=8)
    return _svg(figure)


def _tradeoff_svg(result: dict, steps: list[dict], outcomes: list[str], metric: str) -> str:
    """The budget metric against p50 latency (left) and weights size (right): the original and
    every measured step one labelled point (kept blue along the chain, rolled back a red x;
    skipped steps have none), and the budget's floor as a dashed line."""
    original = result["original"]
    points = [("original", "original", original)] + [
        (_compression_label(s), o, s["measurement"])
        for s, o in zip(steps, outcomes, strict=True)
        if s.get("measurement")
    ]
    styles = {
        "original": {"marker": "s", "color": "#666666"},
        "kept": {"marker": "o", "color": "#4c78a8"},
        "rolled back": {"marker": "x", "color": "#e45756"},
    }
    floor = float(original.get(metric, 0)) - float(result.get("accuracy_budget", 0))
    figure = _new_figure(10.0, 3.4)
    for i, (xlabel, key, scale) in enumerate(
        [("p50 latency (ms)", "latency_p50_ms", 1), ("weights (MB)", "weights_bytes", 1024**2)]
    ):
        axes = _labelled(figure.add_subplot(1, 2, i + 1), xlabel, metric)
        xy = [(float(m.get(key, 0)) / scale, float(m.get(metric, 0))) for _, _, m in points]
        chain = [p for p, (_, o, _) in zip(xy, points, strict=True) if o != "rolled back"]
        axes.plot(*zip(*chain, strict=True), linewidth=1, alpha=0.4, color="#4c78a8")
        for (label, outcome, _), p in zip(points, xy, strict=True):
            axes.scatter(*p, s=40, zorder=3, label=outcome, **styles.get(outcome, styles["kept"]))
            axes.annotate(f" {label}", p, fontsize=8)
        axes.axhline(floor, linestyle="--", linewidth=1, color="#f58518", label="budget")
        if i == 0:
            handles, labels = axes.get_legend_handles_labels()
            legend = dict(zip(labels, handles, strict=True))  # one entry per outcome
            axes.legend(legend.values(), legend.keys(), fontsize=8)
    return _svg(figure)


TASK_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d")


def _continual_svg(history: list[dict]) -> str:
    """Every task's accuracy after each update (0: the starting model): one line with markers
    per task, from the first update that scored it, through the promoted updates; an update not
    promoted a red x at each task's accuracy, reached by a dotted segment from the task's last
    promoted point (a task first scored by it has no line: it is named beside its x)."""
    records = sorted(history, key=_update_number)
    names = list(dict.fromkeys(name for r in records for name in r["accuracy"]))
    figure, axes = _plot(7.0, 3.2, "update", "accuracy")
    for i, name in enumerate(names):
        color = TASK_COLORS[i % len(TASK_COLORS)]
        line, rejected = [], []
        for record in records:
            if name in record["accuracy"]:
                point = (_update_number(record), float(record["accuracy"][name]))
                if _update_kept(record):
                    line.append(point)
                else:
                    rejected.append((point, line[-1:]))
        if line:
            xs, ys = [p[0] for p in line], [p[1] for p in line]
            axes.plot(xs, ys, marker="o", markersize=4, linewidth=1.5, color=color, label=name)
        for point, last in rejected:
            if last:
                axes.plot(*zip(last[0], point, strict=True), linestyle=":", color=color)
            else:
                axes.annotate(f" {name}", point, fontsize=8)
            axes.scatter(*point, s=48, marker="x", color="#e45756", zorder=3, label="not promoted")
    axes.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes.get_legend_handles_labels()
    legend = dict(zip(labels, handles, strict=True))  # one "not promoted" entry, and it last
    if "not promoted" in legend:
        legend["not promoted"] = legend.pop("not promoted")
    axes.legend(legend.values(), legend.keys(), fontsize=8)
    return _svg(figure)


def publish(
    run, events: Iterable, artifacts, producer: str, audit_head: dict[str, Any] | None = None
):
    """Builds ``run``'s report and commits it to ``artifacts`` (an ArtifactStore) as a "report"
    artifact made from every artifact the run produced; returns its ArtifactRecord."""
    doc = document(run, events, audit_head)
    with artifacts.staging_path() as folder:
        write(doc, folder)
        return artifacts.commit_dir(
            folder,
            kind="report",
            name=f"report-{run.pipeline or 'pipeline'}",
            metadata={"run": run.name, "state": doc["state"], "html": REPORT_HTML},
            lineage=Lineage(
                parent_ids=[a["id"] for a in doc["artifacts"]],
                producer=producer,
                operation=run.name,
                pipeline_run=run.name,
            ),
        )


def write(doc: dict, folder) -> None:
    """Writes report.html and report.json into ``folder`` (a pathlib.Path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_JSON).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (folder / REPORT_HTML).write_text(render(doc), encoding="utf-8")


def _fairness_svg(runs: list[tuple[str, dict]]) -> str:
    """Per-group bars of selection rate, accuracy and error rates; a mitigation draws one row of
    panels before and one after, on the same scale."""
    rates = [
        ("selection_rate", "selection rate"),
        ("accuracy", "accuracy"),
        ("false_positive_rate", "false positive rate"),
        ("false_negative_rate", "false negative rate"),
    ]
    figure = _new_figure(8.0, 0.6 + 2.0 * len(runs))
    grid = figure.subplots(len(runs), len(rates), squeeze=False, sharey=True)
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]
    for row, (label, metrics) in enumerate(runs):
        names = [g.get("group", "") for g in metrics["groups"]]
        for column, (key, title) in enumerate(rates):
            axes = grid[row][column]
            values = [float(g.get(key, 0) or 0) for g in metrics["groups"]]
            axes.bar(range(len(values)), values, color=colors[: len(values)] or None)
            axes.set_xticks(range(len(names)), names, fontsize=7, rotation=30)
            axes.set_ylim(0, 1)
            axes.tick_params(labelsize=7)
            axes.grid(alpha=0.3, axis="y")
            axes.set_title(f"{title}{f' ({label})' if label else ''}", fontsize=8)
    return _svg(figure)
