"""report.json's structure: the document built from a run (a PipelineRun) and the events its
steps streamed, and the walk that sections use to find a result's shape in the steps' responses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from google.protobuf import json_format

from forgeline.versions import installed_versions


def document(
    run,
    events: Iterable,
    audit_head: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report's JSON: ``run`` (a PipelineRun) and the step events of the run, and the audit
    log's head after the run (``forgeline.audit.AuditHead.as_dict()``; None without a log): a
    copy kept away from the log's host, so a later ``forgeline audit verify --expect-head``
    catches the log truncated or rewritten up to this run. A run with generative evaluations
    also gets "generation": its systems compared (systems.Comparison.as_dict()).

    Read from those (overview.py): "summary" (the run's name, times, headline scores, gates),
    "config" (each step's model, data and hyper-parameters, and ``versions``: the libraries the
    report was built with, those installed here when None) and "evaluations" (each classifier
    evaluation with its split and per-class scores)."""
    as_dict = json_format.MessageToDict(
        run, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    steps = []
    for step in as_dict.get("steps", []):
        steps.append(
            {
                "name": step["name"],
                "call": step.get("call", ""),
                "method": step.get("method", ""),
                "state": step.get("state", "").removeprefix("STEP_STATE_"),
                "cached": step.get("cached", False),
                "depends_on": step.get("depends_on", []),
                "seconds": _seconds(step.get("start_time"), step.get("end_time")),
                "start_time": step.get("start_time", ""),
                "end_time": step.get("end_time", ""),
                "message": step.get("message", ""),
                "metrics": step.get("metrics", {}),
                "gates": step.get("gates", []),
                "response": step.get("response", {}),
            }
        )
    series: dict[str, dict[str, list[list[float]]]] = {}
    for event in events:
        if not event.step or not event.HasField("metrics"):
            continue
        for point in event.metrics.points:
            if point.step > 0:
                series.setdefault(event.step, {}).setdefault(point.name, []).append(
                    [point.step, point.value]
                )
    doc = {
        "kind": "forgeline/report",
        "version": 1,
        "run": as_dict.get("name", ""),
        "pipeline": as_dict.get("pipeline", ""),
        "state": as_dict.get("state", "").removeprefix("OPERATION_STATE_"),
        "message": as_dict.get("message", ""),
        "attempt": as_dict.get("attempt", 1),
        "create_time": as_dict.get("create_time", ""),
        "end_time": as_dict.get("end_time", ""),
        "overrides": as_dict.get("overrides", []),
        "pipeline_yaml": as_dict.get("pipeline_yaml", ""),
        "steps": steps,
        "series": series,
        "artifacts": list(_artifacts(steps)),
        "audit_head": audit_head,
    }
    # Generative systems compared (scores with the best marked, rows that do not compare, the
    # documents they share): only where the run has some, so other reports keep their shape.
    from forgeline.gateway.report.systems import comparison  # it reads the document: found()

    generation = comparison(doc)
    if generation.systems:
        doc["generation"] = generation.as_dict()
    from forgeline.gateway.report import overview

    doc["summary"] = overview.summary(doc)
    doc["config"] = overview.config(doc, installed_versions() if versions is None else versions)
    doc["evaluations"] = overview.evaluations(doc)
    return doc


def found(doc: dict, shape: Callable[[Any], bool]) -> Iterator[tuple[str, str, Any]]:
    """(step, dotted path, value) for every value of a step's response that has ``shape``."""
    for step in doc["steps"]:
        for path, value in walk(step["response"]):
            if shape(value):
                yield step["name"], path, value


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) in a JSON value, parents before children."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, f"{path}[{i}]")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    from google.protobuf import timestamp_pb2

    a, b = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    a.FromJsonString(start)
    b.FromJsonString(end)
    return round((b.ToNanoseconds() - a.ToNanoseconds()) / 1e9, 3)


def _is_artifact(value: Any) -> bool:
    """Whether ``value`` is an Artifact message as JSON (an id, a uri and a digest)."""
    return isinstance(value, dict) and {"id", "uri", "sha256"} <= value.keys()


def _artifacts(steps: list[dict]) -> Iterator[dict[str, Any]]:
    """The artifacts the steps produced, with their lineage, each once (where first found)."""
    seen = set()
    for step, path, value in found({"steps": steps}, _is_artifact):
        if not value["id"] or value["id"] in seen:
            continue
        seen.add(value["id"])
        lineage = value.get("lineage", {})
        yield {
            "step": step,
            "field": path,
            "id": value["id"],
            "kind": value.get("kind", "").removeprefix("ARTIFACT_KIND_").lower(),
            "uri": value["uri"],
            "sha256": value["sha256"],
            "size_bytes": int(value.get("size_bytes", 0) or 0),
            "parent_ids": lineage.get("parent_ids", []),
            "producer": lineage.get("producer", ""),
            "split": split_of(path),
        }


def split_of(field: str) -> str:
    """The split an artifact is, by where a split step's response holds it ("test.artifact")."""
    head = field.removesuffix(".artifact")
    return head if head in ("train", "validation", "test") and head != field else ""
