"""What a reader wants first, read from the report document alone: the run's summary (its name,
state, times, headline scores against the baseline, compression and gates), its configuration
(each step's model, data and hyper-parameters as the pipeline asked, and the versions it ran
with), and every classifier evaluation with the split it was scored on and per-class scores.

The JSON twin keeps these readings ("summary", "config", "evaluations"); the page reads them
again from the document, so a report written before they existed draws them too (all but the
library versions, which only the document built at the run's end knows).
"""

from __future__ import annotations

import math
from typing import Any

from forgeline.gateway.report.document import found, walk
from forgeline.gateway.report.markup import between, duration, when
from forgeline.gateway.report.shapes import is_compression, is_evaluation, is_generation
from forgeline.gateway.spec import REFERENCE

SPLITS = ("train", "validation", "test")
# Where a step's request names the rows it is scored on: EvaluateModel's dataset, a training
# or baseline step's eval split.
DATASET_FIELDS = ("dataset", "eval")
# The headline scores of a classifier, in order.
CLASSIFIER_METRICS = ("accuracy", "f1_macro")
# Request keys by what they say: the model, its data, its hyper-parameters; the rest "other".
MODEL_KEYS = ("model", "model_id", "baseline", "finetune", "task", "source_path", "compressors")
DATA_KEYS = ("dataset_id", "dataset", "train", "eval", "source", "columns", "datasets")
HYPER_KEYS = ("hyper_parameters",)


# --- datasets and the splits they are ----------------------------------------------------------


def split_datasets(doc: dict) -> dict[str, dict[str, Any]]:
    """Every dataset a split step made: its id -> {"step", "split" (train, validation or test),
    "rows"}."""
    out: dict[str, dict[str, Any]] = {}
    for step in doc["steps"]:
        response = step.get("response") or {}
        for name in SPLITS:
            dataset = response.get(name)
            if not isinstance(dataset, dict) or not isinstance(dataset.get("artifact"), dict):
                continue
            id_ = dataset["artifact"].get("id")
            if id_:
                out.setdefault(
                    id_,
                    {"step": step["name"], "split": name, "rows": _int(dataset.get("num_rows"))},
                )
    return out


def dataset_label(value: Any, splits: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A dataset a request names ({"dataset": its id or reference, "split", "split_step"}): the
    split it is where a split step made it, or where the request refers to a split's output."""
    text = str(value or "")
    if text in splits:
        return {"dataset": text, "split": splits[text]["split"], "split_step": splits[text]["step"]}
    reference = REFERENCE.search(text)
    if reference:
        head = reference.group(2).split(".")[0]
        if head in SPLITS:
            return {"dataset": text, "split": head, "split_step": reference.group(1)}
    return {"dataset": text, "split": "", "split_step": ""}


def describe_dataset(label: dict[str, str]) -> str:
    """A dataset as the page names it: "ds_3dad2decccb0 (test split)"."""
    dataset = label.get("dataset", "")
    if REFERENCE.search(dataset) and label.get("split"):  # never made: the run stopped before
        return f"{label['split']} split of step {label['split_step']}"
    if label.get("split"):
        return f"{dataset} ({label['split']} split)"
    return dataset


def requests(doc: dict) -> dict[str, dict[str, Any]]:
    """Each step's request as the pipeline wrote it (with the run's overrides)."""
    from forgeline.gateway.report.systems import step_requests  # one reading of the pipeline

    return step_requests(doc)


def requested_dataset(
    step: dict, request: dict, outputs: dict, splits: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """The dataset a step scored on: its request's dataset (or eval) input, its references
    resolved; else the one its response's artifacts record in their lineage."""
    from forgeline.gateway.report.systems import requested

    for name in DATASET_FIELDS:
        value, _ = requested(request, (name, "dataset_id"), outputs)
        if value:
            return dataset_label(value, splits)
    for _, value in walk(step.get("response") or {}):
        config = value.get("lineage", {}).get("config") if isinstance(value, dict) else None
        if isinstance(config, dict):
            for name in DATASET_FIELDS:
                inner = config.get(name)
                if isinstance(inner, dict) and inner.get("dataset_id"):
                    return dataset_label(inner["dataset_id"], splits)
    return {"dataset": "", "split": "", "split_step": ""}


# --- evaluations -------------------------------------------------------------------------------


def role(call: str) -> str:
    """What an evaluation scores, by its step's call: a baseline, a model while it trained (its
    eval split after the last epoch), or a model."""
    method = call.rsplit(".", 1)[-1]
    if method == "TrainBaseline":
        return "baseline"
    if method == "TrainModel":
        return "training"
    return "model"


def per_class(labels: list[str], counts: list[int]) -> list[dict[str, Any]]:
    """Precision, recall and F1 of each label from a confusion matrix (row: true label, column:
    predicted); None where a score is undefined (a label never predicted, or never true)."""
    n = len(labels)
    rows = []
    for i, label in enumerate(labels):
        tp = counts[i * n + i]
        support = sum(counts[i * n : (i + 1) * n])
        predicted = sum(counts[r * n + i] for r in range(n))
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "label": label,
                "precision": _round(precision),
                "recall": _round(recall),
                "f1": _round(f1),
                "support": support,
                "predicted": predicted,
            }
        )
    return rows


def evaluations(doc: dict) -> list[dict[str, Any]]:
    """Every classifier evaluation of the run (a generative one is the comparison's), each with
    the dataset and split it was scored on and its per-class scores."""
    splits = split_datasets(doc)
    asked = requests(doc)
    outputs = {s["name"]: s["response"] for s in doc["steps"] if s.get("response")}
    steps = {s["name"]: s for s in doc["steps"]}
    out = []
    for step_name, path, value in found(doc, is_evaluation):
        if is_generation(value):
            continue
        step = steps[step_name]
        kind = role(step.get("call", ""))
        dataset = requested_dataset(step, asked.get(step_name, {}), outputs, splits)
        matrix = value.get("confusion_matrix") or {}
        labels = [str(x) for x in matrix.get("labels", [])]
        counts = [_int(c) for c in matrix.get("counts", [])]
        loss = value.get("loss")
        if loss is not None:
            loss = float(loss)
            # A baseline has no loss: proto JSON writes its unset loss as 0.
            if kind == "baseline" and loss == 0:
                loss = None
        out.append(
            {
                "step": step_name,
                "field": path,
                "role": kind,
                "source": _source(kind, asked.get(step_name, {}), step, outputs),
                **dataset,
                "num_examples": _int(value.get("num_examples")),
                "accuracy": _float(value.get("accuracy")),
                "f1_macro": _float(value.get("f1_macro")),
                "loss": loss,
                "per_class": per_class(labels, counts)
                if labels and len(counts) == len(labels) ** 2
                else [],
            }
        )
    return out


def _source(kind: str, request: dict, step: dict, outputs: dict) -> str:
    """What was scored: "baseline tfidf_logreg", "model mdl_14913e72a82f"."""
    from forgeline.gateway.report.systems import requested

    if kind == "baseline":
        plugin = request.get("baseline")
        name = plugin.get("name") if isinstance(plugin, dict) else ""
        return f"baseline {name}" if name else "baseline"
    if kind == "training":
        model = (step.get("response") or {}).get("model")
        id_ = model.get("id") if isinstance(model, dict) else ""
        return f"model {id_}" if id_ else "model"
    model, _ = requested(request, ("model_id",), outputs)
    return f"model {model}" if model and "${{" not in model else "model"


# --- the summary -------------------------------------------------------------------------------


def short_id(run: str) -> str:
    """A run's short id: "operations/4b2bde78bd0a..." -> "4b2bde78"."""
    tail = run.rsplit("/", 1)[-1]
    return tail[:8]


def summary(doc: dict) -> dict[str, Any]:
    """The run in short: its name, state, start and duration, the final evaluation's headline
    scores (and against each baseline scored on the same rows), each compression's ratios and
    every gate's verdict."""
    pipeline, run = doc.get("pipeline", ""), doc.get("run", "")
    run_id = short_id(run)
    seconds = between(doc.get("create_time"), doc.get("end_time"))
    systems = _scored(doc)
    final = _final(systems)
    baselines = []
    if final:
        for other in systems:
            if other is final or other["role"] != "baseline" or not _same_rows(other, final):
                continue
            shared = [m for m in final["metrics"] if m in other["metrics"]]
            if shared:
                baselines.append(
                    {
                        "step": other["step"],
                        "field": other["field"],
                        "what": other["what"],
                        "metrics": {m: other["metrics"][m] for m in shared},
                        "delta": {
                            m: round(final["metrics"][m] - other["metrics"][m], 6) for m in shared
                        },
                    }
                )
    compressions = [
        {
            "step": step,
            "size_ratio": _float(result.get("size_ratio")),
            "latency_ratio": _float(result.get("latency_ratio")),
            "budget_metric": result.get("budget_metric") or "accuracy",
            "metric_delta": _float(result.get("accuracy_delta")) or 0.0,
            "budget_exceeded": bool(result.get("budget_exceeded")),
        }
        for step, _, result in found(doc, is_compression)
    ]
    gates = [
        {
            "step": s["name"],
            "expression": g.get("expression", ""),
            "passed": bool(g.get("passed")),
            "value": g.get("value"),
            "message": g.get("message", ""),
        }
        for s in doc["steps"]
        for g in s.get("gates") or []
    ]
    return {
        "name": f"{pipeline} · {run_id}" if pipeline and run_id else pipeline or run,
        "pipeline": pipeline,
        "run": run,
        "run_id": run_id,
        "state": doc.get("state", ""),
        "start_time": doc.get("create_time", ""),
        "start": when(doc.get("create_time")),
        "seconds": seconds,
        "duration": duration(seconds),
        "headline": final,
        "baselines": baselines,
        "compressions": compressions,
        "gates": gates,
    }


def _scored(doc: dict) -> list[dict[str, Any]]:
    """Every evaluation as the summary compares them: step, role, dataset, rows and headline
    metrics (a classifier's accuracy and F1, a generative system's scores)."""
    out = []
    for e in evaluations(doc):
        metrics = {m: e[m] for m in CLASSIFIER_METRICS if e.get(m) is not None}
        out.append(_entry(e, e["role"], metrics, e["source"]))
    from forgeline.gateway.report.systems import comparison

    splits = split_datasets(doc)
    for s in comparison(doc).systems:
        kind = "baseline" if s.baseline else "model"
        rouge = {k: v for k, v in s.metrics.items() if k.startswith("rouge")}
        metrics = dict(sorted((rouge or s.metrics).items()))
        label = dataset_label(s.dataset, splits)
        entry = {
            "step": s.step,
            "field": s.field,
            "role": kind,
            **label,
            "num_examples": s.num_examples,
            "subset_seed": s.subset_seed,
        }
        out.append(_entry(entry, kind, metrics, s.source))
    if not out:  # no evaluation in the responses: the scores the steps reported
        for step in doc["steps"]:
            metrics = {}
            for m in CLASSIFIER_METRICS:
                for key in (m, f"eval_{m}"):
                    if key in step.get("metrics", {}):
                        metrics[m] = float(step["metrics"][key])
                        break
            if metrics:
                kind = role(step.get("call", ""))
                entry = {"step": step["name"], "field": "metrics", "dataset": "", "split": ""}
                out.append(_entry(entry | {"split_step": "", "num_examples": 0}, kind, metrics, ""))
    order = {s["name"]: i for i, s in enumerate(doc["steps"])}
    return sorted(out, key=lambda e: order.get(e["step"], 0))  # stable: a step's own order


def _entry(e: dict, kind: str, metrics: dict[str, float], what: str) -> dict[str, Any]:
    return {
        "step": e["step"],
        "field": e["field"],
        "role": kind,
        "what": what or e["step"],
        "dataset": e.get("dataset", ""),
        "split": e.get("split", ""),
        "num_examples": e.get("num_examples", 0),
        "subset_seed": e.get("subset_seed"),
        "metrics": {k: v for k, v in metrics.items() if v is not None and math.isfinite(v)},
    }


def _final(systems: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's final evaluation: the last model evaluation (on the test split where there is
    one), else the last evaluation while training, else the last baseline."""
    for kind in ("model", "training", "baseline"):
        scored = [s for s in systems if s["role"] == kind and s["metrics"]]
        tested = [s for s in scored if s["split"] == "test"]
        if tested or scored:
            return (tested or scored)[-1]
    return None


def _same_rows(a: dict, b: dict) -> bool:
    """Whether two evaluations were scored on the same rows: the same dataset (or split), as
    many rows, the same subset."""
    if a["dataset"] and b["dataset"]:
        same = a["dataset"] == b["dataset"]
    elif a["split"] and b["split"]:
        same = a["split"] == b["split"]
    else:
        same = True  # neither known: the row counts decide
    return (
        same
        and a["num_examples"] == b["num_examples"]
        and a.get("subset_seed") == b.get("subset_seed")
    )


# --- the configuration -------------------------------------------------------------------------


def config(doc: dict, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Each step's request as the pipeline asked (the run's overrides applied, references to
    earlier steps resolved, datasets named with their split), grouped as model, data,
    hyper-parameters and other settings; the versions the run's report was built with, and the
    forgeline versions the services wrote into the artifacts they made."""
    from forgeline.gateway.report.systems import step_requests
    from forgeline.gateway.spec import PipelineInvalid, parse_all

    try:
        pipeline, _ = parse_all(doc.get("pipeline_yaml") or "", list(doc.get("overrides") or []))
        description = pipeline.description
    except (PipelineInvalid, ValueError, TypeError):
        description = ""
    asked = step_requests(doc)
    splits = split_datasets(doc)
    outputs = {s["name"]: s["response"] for s in doc["steps"] if s.get("response")}
    calls = {s["name"]: s.get("call", "") for s in doc["steps"]}
    steps = []
    for name, request in asked.items():
        groups: dict[str, dict[str, Any]] = {
            "model": {},
            "data": {},
            "hyper_parameters": {},
            "other": {},
        }
        for key, value in request.items():
            value = _resolved(value, outputs)
            if key in HYPER_KEYS and isinstance(value, dict):
                groups["hyper_parameters"].update(value)
            elif key in DATA_KEYS:
                groups["data"][key] = _data(value, request[key], splits)
            elif key in MODEL_KEYS:
                groups["model"][key] = value
            else:
                groups["other"][key] = value
        steps.append({"step": name, "call": calls.get(name, ""), **groups})
    services = sorted(
        {str(value["lineage"]["forgeline_version"]) for _, _, value in found(doc, _has_version)}
    )
    return {
        "pipeline": doc.get("pipeline", ""),
        "description": description,
        "overrides": list(doc.get("overrides") or []),
        "steps": steps,
        "versions": dict(versions or {}),
        "service_versions": {"forgeline": services} if services else {},
        "step_versions": step_versions(doc),
    }


def step_versions(doc: dict) -> dict[str, dict[str, str]]:
    """Per step, the library versions the service that ran it recorded in the lineage of the
    first artifact its response holds (steps whose artifacts predate them are left out)."""
    out: dict[str, dict[str, str]] = {}
    for step, _, value in found(doc, _has_libraries):
        out.setdefault(step, {str(k): str(v) for k, v in value["lineage"]["libraries"].items()})
    return out


def _has_libraries(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("lineage"), dict)
        and isinstance(value["lineage"].get("libraries"), dict)
        and bool(value["lineage"]["libraries"])
    )


def _has_version(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("lineage"), dict)
        and bool(value["lineage"].get("forgeline_version"))
    )


def _resolved(value: Any, outputs: dict) -> Any:
    """A request's value with the references that can be resolved from the steps' responses
    resolved; the others left as the pipeline wrote them."""
    from forgeline.gateway.spec import resolve

    if isinstance(value, dict):
        return {k: _resolved(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, outputs) for v in value]
    if isinstance(value, str) and "${{" in value:
        try:
            return resolve(value, outputs)
        except (KeyError, IndexError, ValueError, TypeError):
            return value
    return value


def _data(value: Any, asked: Any, splits: dict[str, dict[str, Any]]) -> Any:
    """A data input with its dataset named as the page names it: its split where it is one,
    else the step that made it where the pipeline referred to one."""

    def named(id_: Any, original: Any) -> str:
        label = dataset_label(id_, splits)
        text = describe_dataset(label)
        reference = REFERENCE.search(original) if isinstance(original, str) else None
        if reference and not label["split"] and text != original:
            text += f" (from step {reference.group(1)})"
        return text

    if isinstance(value, dict) and "dataset_id" in value:
        original = asked.get("dataset_id") if isinstance(asked, dict) else None
        rest = {k: v for k, v in value.items() if k != "dataset_id" and v not in ("", None)}
        dataset = named(value["dataset_id"], original)
        return dataset if not rest else {"dataset": dataset, **rest}
    if isinstance(value, str):
        return named(value, asked)
    return value


# --- numbers of proto JSON ---------------------------------------------------------------------


def _int(value: Any) -> int:
    """An integer of proto JSON: int64 fields are strings, Struct numbers floats."""
    try:
        return int(float(value or 0))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
