"""Runs compared from their report.json (gateway/report's document): what their configs differ
in, every step metric side by side with its delta against the first run, and the metric series
(per training step) to overlay as curves."""

from __future__ import annotations

from typing import Any

import yaml

# Series a comparison overlays (their names contain one of these); the rest stay in the table.
CURVES = ("loss", "accuracy", "f1", "rouge", "learning_rate")


def compare(ids: list[str], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """``docs`` (report.json documents, one per id in ``ids``) side by side."""
    return {
        "runs": [_run(run_id, doc) for run_id, doc in zip(ids, docs, strict=True)],
        "config": config_rows(docs),
        "metrics": metric_rows(docs),
        "series": {
            run_id: {
                step: {name: points for name, points in metrics.items() if _curve(name)}
                for step, metrics in doc.get("series", {}).items()
            }
            for run_id, doc in zip(ids, docs, strict=True)
        },
    }


def _run(run_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    seconds = [s["seconds"] for s in doc.get("steps", []) if s.get("seconds") is not None]
    return {
        "id": run_id,
        "pipeline": doc.get("pipeline", ""),
        "state": doc.get("state", ""),
        "create_time": doc.get("create_time", ""),
        "overrides": doc.get("overrides", []),
        "step_seconds": round(sum(seconds), 3) if seconds else None,
    }


def _curve(name: str) -> bool:
    return name != "epoch" and any(word in name for word in CURVES)


def config_rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every setting of the runs' pipelines (their YAML with the overrides applied, flattened
    to dotted keys): its value in each run, and whether they differ."""
    flat = [_flatten(_config(doc)) for doc in docs]
    keys = sorted(set().union(*flat))
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        rows.append({"key": key, "values": values, "differs": len({repr(v) for v in values}) > 1})
    return rows


def pipeline_spec(pipeline_yaml: str) -> dict[str, Any]:
    """A run's pipeline YAML as a mapping; empty when it does not read as one."""
    try:
        loaded = yaml.safe_load(pipeline_yaml or "")
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _config(doc: dict[str, Any]) -> dict[str, Any]:
    spec = pipeline_spec(doc.get("pipeline_yaml") or "")
    for override in doc.get("overrides", []):  # "path.to.key=value", as `forgeline run --set`
        key, _, value = str(override).partition("=")
        spec.setdefault("overrides", {})[key] = value
    return spec


def _flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_flatten(item, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        found = {}
        for i, item in enumerate(value):
            name = item.get("name", i) if isinstance(item, dict) else i
            found.update(_flatten(item, f"{path}[{name}]"))
        return found
    return {path: value}


def metric_rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (step, metric) any run has: its value per run (None where a run lacks it) and the
    delta of each against the first run."""
    tables = [
        {
            (s["name"], name): value
            for s in doc.get("steps", [])
            for name, value in s.get("metrics", {}).items()
        }
        for doc in docs
    ]
    order: list[tuple[str, str]] = []
    for table in tables:
        order.extend(key for key in table if key not in order)
    rows = []
    for step, name in order:
        if name == "epoch":
            continue
        values = [table.get((step, name)) for table in tables]
        first = values[0]
        deltas = [
            None if first is None or v is None else round(float(v) - float(first), 6)
            for v in values
        ]
        rows.append({"step": step, "metric": name, "values": values, "deltas": deltas})
    return rows
