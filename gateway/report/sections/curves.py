"""Training curves: the metric series each step streamed, per training step."""

from __future__ import annotations

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, section
from forgeline.gateway.report.shapes import is_search


def section_curves(doc: dict) -> str:
    parts = []
    searched = {step for step, _, _ in found(doc, is_search)}  # the search section draws theirs
    for step, metrics in doc["series"].items():
        if step in searched:
            continue
        names = [n for n, points in metrics.items() if len(points) >= 2]
        if names:
            parts.append(
                figure(f"Metrics per training step — {step}", plots.curves_svg(metrics, names))
            )
    return section("Training curves", "".join(parts)) if parts else ""
