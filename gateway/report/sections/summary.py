"""The summary card that opens the page: the run's name (its pipeline and short id), state, start
and duration, the final evaluation's headline scores and their change against each baseline
scored on the same rows, each compression's ratios, and every gate's verdict."""

from __future__ import annotations

import html
from typing import Any

from forgeline.gateway.report.markup import num, points, table

METRIC_NAMES = {"accuracy": "accuracy", "f1_macro": "F1 (macro)"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def verdict(passed: bool) -> str:
    return (
        '<span class="state succeeded">pass</span>'
        if passed
        else '<span class="state failed">FAIL</span>'
    )


def summary_card(summary: dict[str, Any], message: str, attempt: Any) -> str:
    """The card for ``summary`` (overview.summary()), with the run's closing ``message``."""
    state = str(summary.get("state", ""))
    rows = [
        (
            "run",
            f"{html.escape(summary['run'])}"
            + (f" · attempt {html.escape(str(attempt))}" if attempt and attempt != 1 else ""),
        ),
        ("started", html.escape(summary.get("start") or "—")),
        (
            "duration",
            html.escape(
                summary.get("duration") or ("still running" if state == "RUNNING" else "—")
            ),
        ),
    ]
    headline = summary.get("headline")
    if headline:
        rows.append(("result", _headline(headline)))
    for baseline in summary.get("baselines") or []:
        rows.append(("vs baseline", _baseline(baseline)))
    for compression in summary.get("compressions") or []:
        rows.append(("compression", _compression(compression)))
    gates = summary.get("gates") or []
    if gates:
        passed = sum(g["passed"] for g in gates)
        rows.append(
            (
                "gates",
                f"{passed} of {len(gates)} passed"
                + table(
                    ["step", "gate", "verdict", "why"],
                    [
                        [g["step"], g["expression"], verdict(g["passed"]), g["message"]]
                        for g in gates
                    ],
                    raw_columns={2},
                ),
            )
        )
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        '<section class="card">'
        f"<h1>{html.escape(summary['name'])} "
        f'<span class="state {html.escape(state.lower())}">{html.escape(state)}</span></h1>'
        + (f"<p>{html.escape(message)}</p>" if message else "")
        + f'<dl class="summary">{items}</dl></section>'
    )


def _where(entry: dict[str, Any]) -> str:
    """Which rows an evaluation scored: "the test split (1,120 rows)"."""
    rows = f"{int(entry.get('num_examples') or 0):,} rows" if entry.get("num_examples") else ""
    if rows and entry.get("subset_seed") is not None:
        rows += f", a random subset, seed {entry['subset_seed']}"
    if entry.get("split"):
        return f"the {entry['split']} split" + (f" ({rows})" if rows else "")
    if entry.get("dataset"):
        return str(entry["dataset"]) + (f" ({rows})" if rows else "")
    return f"{rows} (split not known)" if rows else "rows not known"


def _headline(entry: dict[str, Any]) -> str:
    scores = " · ".join(
        f"{html.escape(metric_name(k))} <strong>{num(v)}</strong>"
        for k, v in entry["metrics"].items()
    )
    return (
        f"{scores} <span class=meta>— step {html.escape(entry['step'])} on "
        f"{html.escape(_where(entry))}</span>"
    )


def _baseline(entry: dict[str, Any]) -> str:
    parts = [
        f"{html.escape(metric_name(k))} {num(v)} ({points(entry['delta'][k])} points)"
        for k, v in entry["metrics"].items()
    ]
    what = entry.get("what") or entry["step"]
    return (
        f"{html.escape(what)} <span class=meta>(step {html.escape(entry['step'])})</span>: "
        + " · ".join(parts)
        + " <span class=meta>— the change is the final score's over the baseline's</span>"
    )


def _compression(entry: dict[str, Any]) -> str:
    metric = html.escape(str(entry.get("budget_metric") or ""))
    ratio = entry.get("size_ratio")
    latency = entry.get("latency_ratio")
    parts = [f"size ×{num(ratio)}" if ratio is not None else "size —"]
    if latency:
        parts.append(f"latency ×{num(latency)}")
    parts.append(f"{metric} {points(entry.get('metric_delta') or 0)} points")
    over = (
        ' <span class="state failed">budget exceeded</span>' if entry.get("budget_exceeded") else ""
    )
    return f"step {html.escape(entry['step'])}: " + ", ".join(parts) + over
