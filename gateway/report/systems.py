"""The systems a run's generative evaluations compare (each summarization baseline, each model
evaluated by generation), read from the report document: their scores side by side with the
best of each metric marked, which of them were scored on the same rows (numbers compare only
there), and the documents their samples share, joined by row. The JSON twin's "generation" part
and the page's generation sections are both built from this one reading.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forgeline.gateway.report.document import found
from forgeline.gateway.report.shapes import is_generation
from forgeline.gateway.spec import REFERENCE, PipelineInvalid, parse_all, resolve

# Where a step's request names the rows it is scored on: EvaluateModel's dataset, TrainBaseline's
# eval split.
DATASET_FIELDS = ("dataset", "eval")


@dataclass
class System:
    """One generative evaluation of a run, as its table row."""

    name: str  # the step's name (with the field when a step holds several evaluations)
    step: str
    field: str  # where the Evaluation is in the step's response
    source: str  # "baseline lead_k", "model mdl_4f2a (step sft)"
    dataset: str  # the dataset it was scored on, as the pipeline named it ("" unknown)
    num_examples: int
    subset_seed: int | None  # the seed of the random subset it was scored on; None: every row
    metrics: dict[str, float]
    settings: dict[str, Any]
    samples: list[dict[str, Any]]
    outputs_id: str  # the artifact holding every output ("" none)
    best: list[str] = field(default_factory=list)  # the metrics it scores best at
    note: str = ""  # why its numbers do not compare with the others' ("" they do)

    @property
    def baseline(self) -> str:
        return str(self.settings.get("baseline", ""))

    def rows(self) -> tuple[str, int, int | None]:
        """What its numbers were measured on: two systems compare only when these are equal."""
        return self.dataset, self.num_examples, self.subset_seed

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.name,
            "step": self.step,
            "field": self.field,
            "source": self.source,
            "dataset": self.dataset,
            "num_examples": self.num_examples,
            "subset_seed": self.subset_seed,
            "metrics": dict(sorted(self.metrics.items())),
            "best": self.best,
            "note": self.note,
            "outputs_id": self.outputs_id,
        }


@dataclass
class Document:
    """One dataset row that systems sampled: its source and reference, and each system's output."""

    row: int
    source_excerpt: str
    reference: str
    outputs: dict[str, str]  # system name -> its output, in the systems' order

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "source_excerpt": self.source_excerpt,
            "reference": self.reference,
            "outputs": self.outputs,
        }


@dataclass
class Comparison:
    systems: list[System]
    metrics: list[str]  # every metric a system has, ROUGE first
    documents: list[Document]  # documents sampled by the most systems first

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "systems": [s.as_dict() for s in self.systems],
            "documents": [d.as_dict() for d in self.documents],
        }


def comparison(doc: dict) -> Comparison:
    """The generative systems of a report document (none: an empty comparison)."""
    evaluations = list(found(doc, is_generation))
    if not evaluations:
        return Comparison([], [], [])
    requests = step_requests(doc)
    outputs = {s["name"]: s["response"] for s in doc["steps"] if s.get("response")}
    per_step = Counter(step for step, _, _ in evaluations)
    systems = [
        _system(step, path, value, requests.get(step, {}), outputs, per_step[step] > 1)
        for step, path, value in evaluations
    ]
    _find_subsets(systems)
    _compare(systems)
    metrics = sorted(
        {k for s in systems for k in s.metrics}, key=lambda k: (not k.startswith("rouge"), k)
    )
    return Comparison(systems, metrics, _documents(systems))


def _system(
    step: str, path: str, value: dict, request: dict, outputs: dict, several: bool
) -> System:
    settings = value.get("generation_settings") or {}
    if settings.get("baseline"):
        source = f"baseline {settings['baseline']}"
    else:
        model, origin = requested(request, ("model_id",), outputs)
        source = f"model {model}" if model else "model"
        source += f" (step {origin})" if origin else ""
    dataset = ""
    for name in DATASET_FIELDS:
        dataset, _ = requested(request, (name, "dataset_id"), outputs)
        if dataset:
            break
    return System(
        name=f"{step} · {path}" if several else step,
        step=step,
        field=path,
        source=source,
        dataset=dataset,
        num_examples=_int(value.get("num_examples")),
        subset_seed=None,
        metrics={k: float(v) for k, v in (value.get("metrics") or {}).items()},
        settings=settings,
        samples=[s for s in value.get("samples") or [] if isinstance(s, dict)],
        outputs_id=str(value.get("outputs_id") or ""),
    )


def step_requests(doc: dict) -> dict[str, dict[str, Any]]:
    """Each step's request as the pipeline wrote it (with the run's overrides); none when the
    run's pipeline cannot be read."""
    try:
        pipeline, _ = parse_all(doc.get("pipeline_yaml") or "", list(doc.get("overrides") or []))
    except PipelineInvalid:
        return {}
    return {s.name: s.request for s in pipeline.steps}


def requested(request: dict, path: tuple[str, ...], outputs: dict) -> tuple[str, str]:
    """A request's string field, its references to earlier steps resolved from their responses
    where they can be, and the step it refers to ("" none)."""
    node: Any = request
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, str):
        return "", ""
    reference = REFERENCE.search(node)
    try:
        value = resolve(node, outputs)
    except (KeyError, IndexError, ValueError, TypeError):  # that step left no such output
        value = node
    return str(value), reference.group(1) if reference else ""


def _find_subsets(systems: list[System]) -> None:
    """Marks the systems scored on a seeded random subset of their dataset: as many rows as
    max_examples asked for, unless a system that read every row of that dataset read as many
    (the dataset had no more rows than that)."""
    everything = {
        (s.dataset, s.num_examples) for s in systems if not _int(s.settings.get("max_examples"))
    }
    for s in systems:
        asked = _int(s.settings.get("max_examples"))
        if asked and s.num_examples == asked and (s.dataset, asked) not in everything:
            s.subset_seed = _int(s.settings.get("seed"))


def _compare(systems: list[System]) -> None:
    """Notes every system not scored on the rows most systems were scored on, and marks the
    best of each metric among the others (when at least two of them have it)."""
    counts = Counter(s.rows() for s in systems)
    common = max(counts, key=lambda rows: (counts[rows], -_first(systems, rows)))
    for s in systems:
        if s.rows() != common:
            others = "the other" if counts[common] == 1 else "the others"
            s.note = (
                f"scored on {_describe(s.rows())}, {others} on {_describe(common)}: "
                "its numbers do not compare with theirs"
            )
    peers = [s for s in systems if s.rows() == common]
    for metric in {k for s in peers for k in s.metrics}:
        values = [v for s in peers if math.isfinite(v := s.metrics.get(metric, math.nan))]
        if len(values) < 2:
            continue
        best = max(values)
        for s in peers:
            if s.metrics.get(metric) == best:
                s.best.append(metric)
    for s in systems:
        s.best.sort()


def _first(systems: list[System], rows: tuple) -> int:
    return next(i for i, s in enumerate(systems) if s.rows() == rows)


def _describe(rows: tuple[str, int, int | None]) -> str:
    dataset, count, seed = rows
    text = f"{count:,} rows"
    if seed is not None:
        text += f" (a random subset, seed {seed})"
    return text + (f" of {dataset}" if dataset else "")


def _documents(systems: list[System]) -> list[Document]:
    """The rows the systems sampled, each once with every system's output for it: joined by the
    row's position and its source text (two datasets' row 3 are different documents)."""
    documents: dict[tuple[int, str], Document] = {}
    for s in systems:
        for sample in s.samples:
            excerpt = str(sample.get("source_excerpt", ""))
            row = _int(sample.get("row"))
            document = documents.setdefault(
                (row, excerpt), Document(row, excerpt, str(sample.get("reference", "")), {})
            )
            document.outputs.setdefault(s.name, str(sample.get("output", "")))
    return sorted(documents.values(), key=lambda d: -len(d.outputs))  # stable: ties keep order


def _int(value: Any) -> int:
    """An integer of proto JSON: int64 fields are strings, Struct numbers floats."""
    try:
        return int(float(value or 0))
    except (TypeError, ValueError):
        return 0
