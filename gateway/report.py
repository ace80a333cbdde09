"""A run's report: a JSON document with every metric, series and artifact of the run, and a
self-contained HTML page drawn from it (inline SVG plots, no script, no external resource).

The JSON twin is built from the run (its steps' responses, metrics and gates) and the events its
steps streamed; the page is rendered from the JSON alone, so a report can be re-rendered later.
Plots come from *sections*: a section looks for a shape in the document (an Evaluation with a
confusion matrix, a cleaning report with rows in and out per cleaner, metric series per training
step) wherever a step's response holds it, so a new service's results join the report by adding a
section here, with no change to the orchestrator.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from google.protobuf import json_format

from forgeline.artifacts import Lineage
from forgeline.gateway.spec import number

REPORT_HTML, REPORT_JSON = "report.html", "report.json"
MAX_POINTS = 2000  # per series in the page; the JSON keeps every point
SMOOTH_FROM = 50  # series longer than this are drawn smoothed over the raw values


# --- the JSON twin -----------------------------------------------------------------------------


def document(run, events: Iterable) -> dict[str, Any]:
    """The report's JSON: ``run`` (a PipelineRun) and the step events of the run."""
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
    return {
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
    }


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    from google.protobuf import timestamp_pb2

    a, b = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    a.FromJsonString(start)
    b.FromJsonString(end)
    return round((b.ToNanoseconds() - a.ToNanoseconds()) / 1e9, 3)


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) in a JSON value, parents before children."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _artifacts(steps: list[dict]) -> Iterator[dict[str, Any]]:
    """The artifacts the steps produced, with their lineage (an Artifact message has an id, a
    uri and a digest)."""
    seen = set()
    for step in steps:
        for path, value in _walk(step["response"]):
            if not (isinstance(value, dict) and {"id", "uri", "sha256"} <= value.keys()):
                continue
            if not value["id"] or value["id"] in seen:
                continue
            seen.add(value["id"])
            lineage = value.get("lineage", {})
            yield {
                "step": step["name"],
                "field": path,
                "id": value["id"],
                "kind": value.get("kind", "").removeprefix("ARTIFACT_KIND_").lower(),
                "uri": value["uri"],
                "sha256": value["sha256"],
                "size_bytes": int(value.get("size_bytes", 0) or 0),
                "parent_ids": lineage.get("parent_ids", []),
                "producer": lineage.get("producer", ""),
            }


# --- sections: what the page shows, found by shape -------------------------------------------


def _evaluations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    """(step, path, evaluation) for every Evaluation-shaped value in a step's response."""
    for step in doc["steps"]:
        for path, value in _walk(step["response"]):
            if isinstance(value, dict) and "accuracy" in value and "confusion_matrix" in value:
                yield step["name"], path, value


def _cleaning(doc: dict) -> Iterator[tuple[str, list[dict]]]:
    """(step, reports) for every list of per-cleaner reports (cleaner, rows_in, rows_out)."""
    for step in doc["steps"]:
        for _, value in _walk(step["response"]):
            if (
                isinstance(value, list)
                and value
                and all(
                    isinstance(v, dict) and {"cleaner", "rows_in", "rows_out"} <= v.keys()
                    for v in value
                )
            ):
                yield step["name"], value


def section_evaluations(doc: dict) -> str:
    rows = list(_evaluations(doc))
    if not rows:
        return ""
    table = _table(
        ["step", "examples", "accuracy", "F1 (macro)", "loss"],
        [
            [
                step,
                f"{int(e.get('num_examples', 0) or 0):,}",
                _num(e.get("accuracy")),
                _num(e.get("f1_macro")),
                _num(e.get("loss")),
            ]
            for step, _, e in rows
        ],
    )
    plots = []
    for step, _, evaluation in rows:
        matrix = evaluation.get("confusion_matrix") or {}
        labels, counts = matrix.get("labels", []), [int(c) for c in matrix.get("counts", [])]
        if labels and len(counts) == len(labels) ** 2:
            plots.append(_figure(f"Confusion matrix — {step}", _confusion_svg(labels, counts)))
    return _section("Evaluation", table + "".join(plots))


def section_curves(doc: dict) -> str:
    parts = []
    for step, metrics in doc["series"].items():
        names = [n for n, points in metrics.items() if len(points) >= 2]
        if names:
            parts.append(
                _figure(f"Metrics per training step — {step}", _curves_svg(metrics, names))
            )
    return _section("Training curves", "".join(parts)) if parts else ""


def section_cleaning(doc: dict) -> str:
    parts = []
    for step, reports in _cleaning(doc):
        table = _table(
            ["cleaner", "rows in", "rows out", "removed", "seconds"],
            [
                [
                    r["cleaner"],
                    f"{int(r['rows_in']):,}",
                    f"{int(r['rows_out']):,}",
                    f"{int(r['rows_in']) - int(r['rows_out']):,}",
                    _num(r.get("seconds")),
                ]
                for r in reports
            ],
        )
        parts.append(_figure(f"Cleaning funnel — {step}", _funnel_svg(reports)) + table)
    return _section("Data cleaning", "".join(parts)) if parts else ""


# A later service adds its section here (fairness bars, compression trade-offs, ...).
SECTIONS: list[Callable[[dict], str]] = [section_evaluations, section_curves, section_cleaning]


# --- the page ----------------------------------------------------------------------------------


def render(doc: dict) -> str:
    """The self-contained HTML page of a report document."""
    state = doc["state"]
    steps = _table(
        ["step", "call", "state", "cached", "seconds", "metrics", "message"],
        [
            [
                s["name"],
                s["call"],
                f'<span class="state {s["state"].lower()}">{html.escape(s["state"])}</span>',
                "yes" if s["cached"] else "",
                _num(s["seconds"]),
                ", ".join(f"{k} {_num(v)}" for k, v in sorted(s["metrics"].items())[:6]),
                s["message"],
            ]
            for s in doc["steps"]
        ],
        raw_columns={2},
    )
    gates = [
        [
            s["name"],
            g.get("expression", ""),
            '<span class="state succeeded">pass</span>'
            if g.get("passed")
            else '<span class="state failed">FAIL</span>',
            g.get("message", ""),
        ]
        for s in doc["steps"]
        for g in s["gates"]
    ]
    artifacts = _table(
        ["step", "artifact", "kind", "size", "made from", "uri"],
        [
            [
                a["step"],
                a["id"],
                a["kind"],
                _size(a["size_bytes"]),
                ", ".join(a["parent_ids"]),
                a["uri"],
            ]
            for a in doc["artifacts"]
        ],
    )
    body = [
        f"<h1>{html.escape(doc['pipeline'])} "
        f'<span class="state {state.lower()}">{html.escape(state)}</span></h1>',
        f"<p class=meta>run {html.escape(doc['run'])} · attempt {doc['attempt']} · "
        f"{html.escape(doc['create_time'])} → {html.escape(doc['end_time'])}</p>",
        f"<p>{html.escape(doc['message'])}</p>",
        _section("Steps", steps),
        _section("Gates", _table(["step", "gate", "verdict", "why"], gates, raw_columns={2}))
        if gates
        else "",
        *[section(doc) for section in SECTIONS],
        _section("Artifacts and lineage", artifacts) if doc["artifacts"] else "",
        "<details><summary>Pipeline</summary><pre>"
        + html.escape(doc["pipeline_yaml"])
        + "</pre></details>",
    ]
    return PAGE.format(title=html.escape(f"{doc['pipeline']} · {doc['run']}"), body="\n".join(body))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2330; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; }} h2 {{ margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }}
th, td {{ text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eee;
         vertical-align: top; }}
th {{ background: #f5f6f8; }} .meta {{ color: #667; }}
.state {{ padding: .05rem .45rem; border-radius: .6rem; font-size: .85em; background: #eee; }}
.succeeded {{ background: #d8f3dc; }} .failed {{ background: #fde2e1; }}
.cancelled {{ background: #fff3c4; }} .skipped {{ color: #888; }}
figure {{ margin: 1rem 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
figure svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f5f6f8; padding: .8rem; overflow: auto; }}
</style></head>
<body>
{body}
</body></html>
"""


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{content}</section>"


def _figure(caption: str, svg: str) -> str:
    return f'<figure class="plot"><figcaption>{html.escape(caption)}</figcaption>{svg}</figure>'


def _table(header: list[str], rows: list[list[Any]], raw_columns: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c if i in raw_columns else html.escape(str(c))}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: Any) -> str:
    if value is None or value == "":
        return ""
    return number(value, grouped=True)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --- plots (matplotlib, Agg, inline SVG) -------------------------------------------------------


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits in HTML


def _new_figure(width: float, height: float):
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    matplotlib.rcParams["svg.hashsalt"] = "forgeline"  # stable ids: the same run, the same page
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _curves_svg(metrics: dict[str, list[list[float]]], names: list[str]) -> str:
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _new_figure(4.0 * columns, 2.6 * rows)
    for i, name in enumerate(sorted(names, key=_metric_order)):
        axes = figure.add_subplot(rows, columns, i + 1)
        points = sorted(metrics[name])
        stride = max(1, len(points) // MAX_POINTS)
        xs = [p[0] for p in points[::stride]]
        ys = [p[1] for p in points[::stride]]
        if len(ys) > SMOOTH_FROM:  # noisy per-batch values: faint raw line, smoothed on top
            axes.plot(xs, ys, linewidth=0.8, alpha=0.3, color="#4c78a8")
            axes.plot(xs, _ema(ys), linewidth=1.5, color="#4c78a8")
        else:
            axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color="#4c78a8")
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    return _svg(figure)


def _ema(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, bias-corrected (as TensorBoard smooths)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def _metric_order(name: str) -> tuple[int, str]:
    for rank, word in enumerate(("loss", "accuracy", "f1", "learning_rate")):
        if word in name:
            return rank, name
    return 9, name


def _confusion_svg(labels: list[str], counts: list[int]) -> str:
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


def _funnel_svg(reports: list[dict]) -> str:
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


def publish(run, events: Iterable, artifacts, producer: str):
    """Builds ``run``'s report and commits it to ``artifacts`` (an ArtifactStore) as a "report"
    artifact made from every artifact the run produced; returns its ArtifactRecord."""
    doc = document(run, events)
    with artifacts.staging_path() as folder:
        write(doc, folder)
        return artifacts.commit_dir(
            folder,
            kind="report",
            name=f"report-{run.pipeline or 'pipeline'}",
            metadata={"run": run.name, "state": doc["state"], "html": REPORT_HTML},
            lineage=Lineage(
                parent_ids=[a["id"] for a in doc["artifacts"]],
                producer=producer,
                operation=run.name,
                pipeline_run=run.name,
            ),
        )


def write(doc: dict, folder) -> None:
    """Writes report.html and report.json into ``folder`` (a pathlib.Path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_JSON).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (folder / REPORT_HTML).write_text(render(doc), encoding="utf-8")
