"""Evaluations (TrainingService/EvaluateModel and any result holding one): the scores of each
classifier and its confusion matrix, then the generative systems compared (generation.py)."""

from __future__ import annotations

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, section, table
from forgeline.gateway.report.sections.generation import section_generation
from forgeline.gateway.report.shapes import is_evaluation, is_generation


def section_evaluations(doc: dict) -> str:
    # One entry of SECTIONS for both: a page without generative results stays as it was.
    return _classifiers(doc) + section_generation(doc)


def _classifiers(doc: dict) -> str:
    # A generative Evaluation has the classifier fields too (zero): it belongs to the comparison.
    rows = [r for r in found(doc, is_evaluation) if not is_generation(r[2])]
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
