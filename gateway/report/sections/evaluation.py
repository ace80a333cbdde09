"""Evaluations (TrainingService/EvaluateModel and any result holding one): the scores of each
classifier with the split it was scored on, its confusion matrix beside its per-class precision,
recall and F1, the rows it labelled wrongly (the most confident mistakes first), then the
generative systems compared (generation.py)."""

from __future__ import annotations

import html

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import walk
from forgeline.gateway.report.markup import figure, num, section, table
from forgeline.gateway.report.overview import describe_dataset, evaluations
from forgeline.gateway.report.sections.generation import section_generation

ROLES = {
    "model": "model",
    "baseline": "baseline",
    "training": "model, after its last epoch",
}
NONE = "—"  # a score that does not exist (a baseline's loss, a label never predicted)


def section_evaluations(doc: dict) -> str:
    # One entry of SECTIONS for both: a page without generative results stays as it was.
    return _classifiers(doc) + section_generation(doc)


def _split(e: dict) -> str:
    return describe_dataset(e) or "not known"


def _classifiers(doc: dict) -> str:
    # A generative Evaluation has the classifier fields too (zero): it belongs to the comparison.
    rows = evaluations(doc)
    if not rows:
        return ""
    scores = table(
        ["step", "scores", "split", "examples", "accuracy", "F1 (macro)", "loss"],
        [
            [
                e["step"],
                ROLES.get(e["role"], e["role"]),
                _split(e),
                f"{e['num_examples']:,}",
                num(e["accuracy"]),
                num(e["f1_macro"]),
                NONE if e["loss"] is None else num(e["loss"]),
            ]
            for e in rows
        ],
    )
    drawn = []
    for e in rows:
        classes = e["per_class"]
        if not classes:
            continue
        labels = [c["label"] for c in classes]
        n = len(labels)
        found = _value(doc, e)  # the Evaluation itself, from the step's response
        counts = [int(c) for c in (found.get("confusion_matrix") or {}).get("counts", [])]
        if len(counts) != n * n:
            continue
        where = f", {e['split']} split" if e["split"] else ""
        per_class = table(
            ["label", "precision", "recall", "F1", "true rows", "predicted"],
            [
                [
                    c["label"],
                    _score(c["precision"]),
                    _score(c["recall"]),
                    _score(c["f1"]),
                    f"{c['support']:,}",
                    f"{c['predicted']:,}",
                ]
                for c in classes
            ],
        )
        drawn.append(
            '<div class="pair">'
            + figure(f"Confusion matrix — {e['step']}{where}", plots.confusion_svg(labels, counts))
            + f'<div class="per-class"><h3>Per class — {html.escape(e["step"])}</h3>'
            + per_class
            + "</div></div>"
            + _mistakes(e, found.get("misclassified") or [])
        )
    return section("Evaluation", scores + "".join(drawn))


def _mistakes(e: dict, rows: list[dict]) -> str:
    """The rows the classifier labelled wrongly, as the evaluation kept them."""
    if not rows:
        return ""
    wrong = e["num_examples"] - round(e["accuracy"] * e["num_examples"])
    shown = f"{len(rows)} of {wrong:,}" if wrong > len(rows) else f"all {len(rows)}"
    body = table(
        ["row", "text", "label", "predicted", "confidence"],
        [
            [
                str(r.get("row", 0)),
                r.get("text_excerpt", ""),
                r.get("label", ""),
                r.get("predicted", ""),
                num(r["confidence"]) if r.get("confidence") else NONE,
            ]
            for r in rows
        ],
    )
    return (
        f'<div class="mistakes"><h3>Mistakes — {html.escape(e["step"])} ({shown}, the most '
        "confident first)</h3>" + body + "</div>"
    )


def _score(value: float | None) -> str:
    return NONE if value is None else num(value)


def _value(doc: dict, e: dict) -> dict:
    step = next(s for s in doc["steps"] if s["name"] == e["step"])
    for path, value in walk(step["response"]):
        if path == e["field"] and isinstance(value, dict):
            return value
    return {}
