"""The run's configuration: each step's model, data, hyper-parameters and other settings as the
pipeline asked for them (overrides applied, references resolved, datasets named with their
split), and the versions of forgeline and the libraries it ran with."""

from __future__ import annotations

import html
from typing import Any

from forgeline.gateway.report.markup import compact, plugin_text, section, table

GROUPS = (("model", "model"), ("data", "data"), ("hyper_parameters", "hyper-parameters"))


def section_config(config: dict[str, Any]) -> str:
    """The "Configuration" section of ``config`` (overview.config())."""
    parts = []
    if config.get("description"):
        parts.append(f"<p>{html.escape(config['description'])}</p>")
    if config.get("overrides"):
        parts.append(
            "<p class=meta>overrides: "
            + ", ".join(f"<code>{html.escape(o)}</code>" for o in config["overrides"])
            + "</p>"
        )
    rows = []
    for step in config.get("steps") or []:
        cells = [_cell(step.get(key) or {}) for key, _ in GROUPS]
        cells.append(_cell(step.get("other") or {}))
        rows.append([html.escape(step["step"]), html.escape(step.get("call", "")), *cells])
    if rows:
        parts.append(
            table(
                ["step", "call", *(title for _, title in GROUPS), "other settings"],
                rows,
                raw_columns=set(range(6)),
            )
        )
    if "versions" not in config:  # a document written before they were recorded
        parts.append("<p class=meta>This report predates recorded library versions.</p>")
    parts.append(_versions(config))
    return section("Configuration", "".join(parts)) if any(parts) else ""


def _versions(config: dict[str, Any]) -> str:
    """The library versions where the report was built (the gateway) beside those each step's
    service recorded in the artifacts it made, steps that agree sharing a column."""
    versions = config.get("versions") or {}
    by_step = config.get("step_versions") or {}
    if by_step:
        columns: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for step, recorded in by_step.items():
            columns.setdefault(tuple(sorted(recorded.items())), []).append(step)
        names = dict.fromkeys([*versions, *(n for r in by_step.values() for n in r)])
        recorded = [dict(key) for key in columns]
        lines = [
            [name, versions.get(name, "—"), *(r.get(name, "—") for r in recorded)] for name in names
        ]
        headers = ["library", "the report (gateway)"]
        headers += ["steps " + ", ".join(steps) for steps in columns.values()]
        return (
            "<h3>Versions</h3><p class=meta>Where the report was built, and what each step's "
            "service recorded in the artifacts it made.</p>" + table(headers, lines)
        )
    services = (config.get("service_versions") or {}).get("forgeline") or []
    if not (versions or services):
        return ""
    lines = [[name, version] for name, version in versions.items()]
    if services:  # artifacts recorded before their libraries were
        lines.append(["forgeline (the services, from their artifacts)", ", ".join(services)])
    return (
        "<h3>Versions</h3><p class=meta>Where the report was built (the gateway), and the "
        "forgeline version the services wrote into the artifacts they made.</p>"
        + table(["library", "version"], lines)
    )


def _cell(group: dict[str, Any]) -> str:
    """A group of settings, one "key value" a line; nested settings by their dotted key, a
    plugin choice ({name, config}) in short."""
    return "<br>".join(
        f"<code>{html.escape(key)}</code> {html.escape(value)}"
        for key, value in _flat(group)
        if value != ""
    )


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if prefix and set(value) <= {"name", "config"} and value.get("name"):
            return [(prefix, plugin_text(value))]
        out = []
        for key, item in value.items():
            out += _flat(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and v.get("name") for v in value)
    ):
        return [(prefix, ", ".join(plugin_text(v) for v in value))]
    if value is None or value == "" or value == [] or value == {}:
        return [(prefix, "")]
    return [(prefix, value if isinstance(value, str) else compact(value))]
