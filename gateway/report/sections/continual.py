"""Continual learning (MemoryService/ContinualUpdate): the update's verdict, every task's
accuracy before and after, and the accuracy over the memory's successive updates."""

from __future__ import annotations

import html

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, points, section, table
from forgeline.gateway.report.shapes import is_continual_update


def section_continual(doc: dict) -> str:
    parts = []
    for step, _, result in found(doc, is_continual_update):
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
            f"{points(result.get('backward_transfer', 0))} points · {task} accuracy "
            f"{num(result.get('new_task_accuracy_before', 0))} → "
            f"{num(result.get('new_task_accuracy', 0))} · rows: {new:,} new / {selected:,} "
            f"selected / {replayed:,} replayed / {added:,} added to the memory · "
            f"{num(result.get('seconds', 0))} s</p>"
        )
        rows = table(
            ["task", "before", "after", "change (points)", "accuracy when learned", "examples"],
            [
                [
                    f"{t['task']}{' (new)' if t.get('new') else ''}",
                    num(t.get("before", 0)),
                    num(t.get("after", 0)),
                    points(float(t.get("after", 0)) - float(t.get("before", 0))),
                    num(t.get("learned", 0)),
                    f"{int(t.get('examples', 0) or 0):,}",
                ]
                for t in result["tasks"]
            ],
        )
        drawn = figure(
            "per-task accuracy over successive updates", plots.continual_svg(result["history"])
        )
        parts.append(section(f"Continual learning — {step}", summary + rows + drawn))
    return "".join(parts)
