"""Evaluations (TrainingService/EvaluateModel and any result holding one): the scores of each,
and its confusion matrix."""

from __future__ import annotations

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, section, table
from forgeline.gateway.report.shapes import is_evaluation


def section_evaluations(doc: dict) -> str:
    rows = list(found(doc, is_evaluation))
    if not rows:
        return ""
    scores = table(
        ["step", "examples", "accuracy", "F1 (macro)", "loss"],
        [
            [
                step,
                f"{int(e.get('num_examples', 0) or 0):,}",
                num(e.get("accuracy")),
                num(e.get("f1_macro")),
                num(e.get("loss")),
            ]
            for step, _, e in rows
        ],
    )
    drawn = []
    for step, _, evaluation in rows:
        matrix = evaluation.get("confusion_matrix") or {}
        labels, counts = matrix.get("labels", []), [int(c) for c in matrix.get("counts", [])]
        if labels and len(counts) == len(labels) ** 2:
            drawn.append(figure(f"Confusion matrix — {step}", plots.confusion_svg(labels, counts)))
    return section("Evaluation", scores + "".join(drawn))
