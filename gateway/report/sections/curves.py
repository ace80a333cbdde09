"""Training curves: the metric series each step streamed, per training step. A metric and its
evaluation twin (loss and eval_loss) share one panel; the epoch is the panels' second axis, not a
series of its own."""

from __future__ import annotations

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, section
from forgeline.gateway.report.shapes import is_search

# Series that are an axis of the others, not a metric.
AXES = ("epoch",)
# Prefixes of one metric's variants drawn on the same axes: "eval_loss" beside "loss".
VARIANTS = ("eval_", "train_")


def panels(metrics: dict[str, list]) -> list[tuple[str, list[str]]]:
    """The panels of a step's series: (title, the series drawn on it), a metric's train and
    eval variants together; a panel needs one series of two points or more."""
    groups: dict[str, list[str]] = {}
    for name in metrics:
        if name in AXES:
            continue
        base = name
        for prefix in VARIANTS:
            base = base.removeprefix(prefix)
        groups.setdefault(base, []).append(name)
    out = []
    for base, names in groups.items():
        if any(len(metrics[n]) >= 2 for n in names):
            # The training series first, then its evaluation twin.
            names.sort(key=lambda n: (n.startswith("eval_"), n))
            out.append((base, names))
    return sorted(out, key=lambda panel: plots.metric_order(panel[0]))


def section_curves(doc: dict) -> str:
    parts = []
    searched = {step for step, _, _ in found(doc, is_search)}  # the search section draws theirs
    for step, metrics in doc["series"].items():
        if step in searched:
            continue
        drawn = panels(metrics)
        if drawn:
            epoch = metrics.get("epoch") if "epoch" in metrics else None
            parts.append(
                figure(
                    f"Metrics per training step — {step}",
                    plots.curves_svg(metrics, drawn, epoch),
                )
            )
    return section("Training curves", "".join(parts)) if parts else ""
