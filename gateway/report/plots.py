"""The report's plots: matplotlib figures (no pyplot, no GUI backend) as inline SVG.

They are drawn in the report's own style, set for the drawing alone: matplotlib's global settings
are the process's, and a report leaves them as it found them. The SVG backend reads the style
from the global settings at save time, so it is set there around each drawing and put back after
(``matplotlib.rc_context`` would too, but it reads every setting, which resolves the default
backend by importing pyplot), and drawings are serialized by a lock: two reports published at
once would otherwise put back each other's settings mid-save.
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections.abc import Callable
from typing import Any, ParamSpec

from forgeline.gateway.report.markup import num
from forgeline.gateway.report.shapes import (
    compression_label,
    final,
    finals,
    history,
    trial_number,
    trial_state,
    update_kept,
    update_number,
)

MAX_POINTS = 2000  # per series in the page; the JSON keeps every point
SMOOTH_FROM = 50  # series longer than this are drawn smoothed over the raw values
STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, searchable
    "svg.hashsalt": "forgeline",  # stable ids: the same run, the same page
}
TASK_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d")

_drawing = threading.Lock()
_P = ParamSpec("_P")


def _styled(draw: Callable[_P, str]) -> Callable[_P, str]:
    """``draw`` run in the report's style, one drawing at a time (see the module's docstring)."""

    @functools.wraps(draw)
    def styled(*args: _P.args, **kwargs: _P.kwargs) -> str:
        import matplotlib

        with _drawing:
            saved = {key: matplotlib.rcParams[key] for key in STYLE}
            matplotlib.rcParams.update(STYLE)
            try:
                return draw(*args, **kwargs)
            finally:
                matplotlib.rcParams.update(saved)

    return styled


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits in HTML


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


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


# --- training curves ---------------------------------------------------------------------------


SERIES_COLORS = {"train": "#4c78a8", "eval": "#f58518"}


@_styled
def curves_svg(
    metrics: dict[str, list[list[float]]],
    panels: list[tuple[str, list[str]]],
    epoch: list[list[float]] | None = None,
) -> str:
    """One panel per (title, series) of ``panels``, by training step: a metric's training and
    evaluation series on the same axes (evaluation in orange), ranges that keep a loss's early
    spikes from flattening the rest; ``epoch`` (the epoch reached at each step) labels a second
    axis on top."""
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _new_figure(4.0 * columns, 2.8 * rows)
    from matplotlib.ticker import MaxNLocator

    to_epoch = _epoch_axis(epoch)
    steps = [p[0] for _, names in panels for name in names for p in metrics[name]]
    pad = (max(steps) - min(steps)) * 0.03 or 1  # every panel over the same steps
    for i, (title, names) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, i + 1)
        drawn: list[float] = []
        for name in names:
            color = SERIES_COLORS["eval" if name.startswith("eval_") else "train"]
            points = sorted(metrics[name])
            stride = max(1, len(points) // MAX_POINTS)
            xs = [p[0] for p in points[::stride]]
            ys = [p[1] for p in points[::stride]]
            if len(ys) > SMOOTH_FROM and not _scheduled(name):
                # Noisy per-batch values: a faint raw line, smoothed on top.
                axes.plot(xs, ys, linewidth=0.8, alpha=0.3, color=color)
                axes.plot(xs, _ema(ys), linewidth=1.5, color=color, label=name)
                drawn += _ema(ys) + _robust(ys)
            else:
                marker = "o" if len(ys) <= SMOOTH_FROM else None  # a long series: a line
                evaluated = name.startswith("eval_")  # a few points, drawn over the training
                axes.plot(
                    xs,
                    ys,
                    marker=marker,
                    markersize=6 if evaluated else 4,
                    linewidth=1.2,
                    color=color,
                    label=name,
                    zorder=3 if evaluated else 2,
                )
                drawn += ys
        _range(axes, title, [y for y in drawn if math.isfinite(y)])
        axes.set_xlim(min(steps) - pad, max(steps) + pad)
        axes.set_title(names[0] if len(names) == 1 else title, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        if len(names) > 1:
            axes.legend(fontsize=7)
        if to_epoch:
            top = axes.secondary_xaxis("top", functions=to_epoch)
            top.set_xlabel("epoch", fontsize=8)
            top.xaxis.set_major_locator(MaxNLocator(nbins=5))
            top.tick_params(labelsize=7)
    return _svg(figure)


def _scheduled(name: str) -> bool:
    """A series a schedule sets (the learning rate): smoothing would only make it lag."""
    return "learning_rate" in name or name in ("lr", "momentum")


def _robust(values: list[float]) -> list[float]:
    """The values' 2nd and 98th percentiles: where a noisy series' range ends."""
    ordered = sorted(v for v in values if math.isfinite(v))
    if not ordered:
        return []
    return [ordered[int(0.02 * (len(ordered) - 1))], ordered[int(0.98 * (len(ordered) - 1))]]


def _range(axes, title: str, values: list[float]) -> None:
    """A panel's value range: a loss from 0 to a little over its (robust) top; a score in 0..1
    to a margin around its values, within 0..1."""
    if not values:
        return
    low, high = min(values), max(values)
    if "loss" in title and low >= 0:
        axes.set_ylim(0, high * 1.08 if high > 0 else 1)
    elif (
        any(w in title for w in ("accuracy", "f1", "precision", "recall")) and 0 <= low <= high <= 1
    ):
        margin = max(0.02, (high - low) * 0.1)
        axes.set_ylim(max(0.0, low - margin), min(1.0, high + margin) + 0.005)


def _epoch_axis(epoch: list[list[float]] | None):
    """Step -> epoch and back (for a second axis), from the epoch reached at each step; None
    without a series that grows with the steps."""
    if not epoch or len(epoch) < 2:
        return None
    points = sorted((float(s), float(e)) for s, e in epoch)
    steps, epochs = [p[0] for p in points], [p[1] for p in points]
    if any(b <= a for a, b in zip(epochs, epochs[1:], strict=False)) or any(
        b <= a for a, b in zip(steps, steps[1:], strict=False)
    ):
        return None
    import numpy

    def forward(x):
        return numpy.interp(x, steps, epochs)

    def backward(x):
        return numpy.interp(x, epochs, steps)

    return forward, backward


def _ema(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, bias-corrected (as TensorBoard smooths)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def metric_order(name: str) -> tuple[int, str]:
    for rank, word in enumerate(("loss", "accuracy", "f1", "learning_rate")):
        if word in name:
            return rank, name
    return 9, name


# --- evaluation and cleaning -------------------------------------------------------------------


@_styled
def confusion_svg(labels: list[str], counts: list[int]) -> str:
    """A confusion matrix (``counts`` row by row: true label, then predicted), counts written."""
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


@_styled
def funnel_svg(reports: list[dict]) -> str:
    """The rows left after each cleaner, the input's on top."""
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


# --- a hyper-parameter search ------------------------------------------------------------------


@_styled
def trials_svg(trials: list[dict], name: str, larger: bool) -> str:
    """Each finished trial's objective by trial number (completed filled, stopped early hollow,
    failed left out) and the best completed one so far as a step line."""
    figure, axes = _plot(7.0, 3.2, "trial", name)
    for state, face in (("completed", "#4c78a8"), ("stopped early", "none")):
        if points := finals(trials, state):
            xs, ys = zip(*points, strict=True)
            axes.scatter(xs, ys, s=36, facecolors=face, edgecolors="#4c78a8", label=state, zorder=3)
    if completed := finals(trials, "completed"):
        pick = max if larger else min
        running = [pick(y for _, y in completed[: i + 1]) for i in range(len(completed))]
        axes.step(
            [x for x, _ in completed], running, where="post", color="#f58518", label="best so far"
        )
    axes.xaxis.get_major_locator().set_params(integer=True)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    return _svg(figure)


@_styled
def epochs_svg(trials: list[dict], best: str | None, name: str) -> str:
    """Each trial's objective after every epoch: the best trial bold, those stopped early (or
    failed) faint, so the scheduler's early stops show."""
    figure, axes = _plot(7.0, 3.2, "epoch", name)
    for trial in trials:
        values = history(trial)
        if not values:
            continue
        epochs = range(1, len(values) + 1)
        if trial.get("id") == best:
            axes.plot(
                epochs,
                values,
                marker="o",
                markersize=4,
                linewidth=2.2,
                color="#f58518",
                label=f"best (trial {trial_number(trial)})",
                zorder=3,
            )
        else:
            done = trial_state(trial) == "completed"
            axes.plot(
                epochs,
                values,
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


@_styled
def importances_svg(importances: dict[str, float], labels: dict[str, str]) -> str:
    """The parameters' importances as horizontal bars, the largest on top."""
    ordered = sorted(importances.items(), key=lambda item: (item[1], item[0]))
    figure, axes = _plot(7.0, 0.6 + 0.4 * len(ordered), "importance", "")
    positions = range(len(ordered))
    axes.barh(positions, [float(v) for _, v in ordered], color="#4c78a8")
    for y, (_, value) in zip(positions, ordered, strict=True):
        axes.text(float(value), y, f" {num(value)}", va="center", fontsize=9)
    axes.set_yticks(positions, [labels[p] for p, _ in ordered])
    axes.set_xlim(0, max(float(v) for _, v in ordered) * 1.18 or 1)
    return _svg(figure)


@_styled
def pareto_svg(completed: list[dict], front: set[str], name: str) -> str:
    """The completed trials' objective against their trainable parameters, each labelled with its
    number, the Pareto front's highlighted."""
    figure, axes = _plot(7.0, 3.2, "trainable parameters", name)
    for trial in completed:
        x, y = float(trial["metrics"]["trainable_parameters"]), final(trial)
        if y is None:
            continue
        on_front = trial.get("id") in front
        axes.scatter(x, y, s=48 if on_front else 30, color="#f58518" if on_front else "#4c78a8")
        axes.annotate(f" {trial_number(trial)}", (x, y), fontsize=8)
    return _svg(figure)


# --- a compression chain -----------------------------------------------------------------------


@_styled
def tradeoff_svg(result: dict, steps: list[dict], outcomes: list[str], metric: str) -> str:
    """The budget metric against p50 latency (left) and weights size (right): the original and
    every measured step one labelled point (kept blue along the chain, rolled back a red x;
    skipped steps have none), and the budget's floor as a dashed line."""
    original = result["original"]
    points = [("original", "original", original)] + [
        (compression_label(s), o, s["measurement"])
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


# --- a memory's continual updates --------------------------------------------------------------


@_styled
def continual_svg(records: list[dict]) -> str:
    """Every task's accuracy after each update (0: the starting model): one line with markers
    per task, from the first update that scored it, through the promoted updates; an update not
    promoted a red x at each task's accuracy, reached by a dotted segment from the task's last
    promoted point (a task first scored by it has no line: it is named beside its x)."""
    records = sorted(records, key=update_number)
    names = list(dict.fromkeys(name for r in records for name in r["accuracy"]))
    figure, axes = _plot(7.0, 3.2, "update", "accuracy")
    for i, name in enumerate(names):
        color = TASK_COLORS[i % len(TASK_COLORS)]
        line, rejected = [], []
        for record in records:
            if name in record["accuracy"]:
                point = (update_number(record), float(record["accuracy"][name]))
                if update_kept(record):
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


# --- fairness ----------------------------------------------------------------------------------


@_styled
def fairness_svg(runs: list[tuple[str, dict[str, Any]]]) -> str:
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
