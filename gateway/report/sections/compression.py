"""Compression chains (CompressionService/CompressModel): each step's verdict and measurement
against the original, and the trade-off of the budget metric against latency and size."""

from __future__ import annotations

import html

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, points, section, size, table
from forgeline.gateway.report.shapes import compression_label, is_compression, label


def section_compression(doc: dict) -> str:
    parts = []
    for step, _, result in found(doc, is_compression):
        steps = sorted(result["steps"], key=lambda s: int(s.get("index", 0) or 0))
        metric = result.get("budget_metric") or "accuracy"
        outcomes = [label(s.get("outcome", ""), "STEP_OUTCOME_") for s in steps]
        summary = (
            f"<p class=meta>{len(steps)} steps: "
            + ", ".join(f"{outcomes.count(o)} {o}" for o in ("kept", "rolled back", "skipped"))
            + f" · budget {float(result.get('accuracy_budget', 0)) * 100:.2f} points of "
            f"{html.escape(metric)}{' · budget exceeded' if result.get('budget_exceeded') else ''}"
            f" · final size ×{num(result.get('size_ratio', 0))}, latency "
            f"×{num(result.get('latency_ratio', 0))}, {html.escape(metric)} "
            f"{points(result.get('accuracy_delta', 0))} points · "
            f"{num(result.get('seconds', 0))} s</p>"
        )
        rows = table(
            [
                *("step", "outcome", "format", "size", "size ratio", "Linear-weights ratio"),
                *("p50 ms", "p95 ms", "throughput/s", "batch latency ratio", "accuracy", "F1"),
                *(f"Δ {metric} (points)", "reason"),
            ],
            [_row("original", "", result["original"], {})]
            + [
                _row(compression_label(s), o, s.get("measurement"), s)
                for s, o in zip(steps, outcomes, strict=True)
            ],
        )
        drawn = figure(
            f"{metric} against latency and size, one point per step",
            plots.tradeoff_svg(result, steps, outcomes, metric),
        )
        parts.append(section(f"Compression — {step}", summary + rows + drawn))
    return "".join(parts)


def _row(name: str, outcome: str, m: dict | None, step: dict) -> list[str]:
    """A table row: a Measurement's cells, and a step's ratios and verdict against the original
    (blank where the step has no measurement: skipped)."""
    m, ratios = m or {}, step if m else {}
    return [
        name,
        outcome,
        m.get("format", ""),
        size(int(float(m.get("weights_bytes", 0)))) if m else "",
        num(ratios.get("size_ratio")),
        num(ratios.get("linear_size_ratio")),
        num(m.get("latency_p50_ms")),
        num(m.get("latency_p95_ms")),
        num(m.get("throughput")),
        num(ratios.get("batch_latency_ratio")),
        num(m.get("accuracy")),
        num(m.get("f1_macro")),
        points(ratios.get("accuracy_delta", 0)) if ratios else "",
        step.get("reason", ""),
    ]
