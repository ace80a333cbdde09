"""The report's HTML page, drawn from the document alone: the run's header, its steps, gates,
the result sections, its artifacts and the pipeline; self-contained (no script, no fetch)."""

from __future__ import annotations

import html

from forgeline.gateway.report.markup import num, section, size, table
from forgeline.gateway.report.sections import SECTIONS
from forgeline.gateway.report.sections.audit_head import audit_head


def render(doc: dict) -> str:
    """The self-contained HTML page of a report document."""
    state = doc["state"]
    steps = table(
        ["step", "call", "state", "cached", "seconds", "metrics", "message"],
        [
            [
                s["name"],
                s["call"],
                f'<span class="state {s["state"].lower()}">{html.escape(s["state"])}</span>',
                "yes" if s["cached"] else "",
                num(s["seconds"]),
                ", ".join(f"{k} {num(v)}" for k, v in sorted(s["metrics"].items())[:6]),
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
    artifacts = table(
        ["step", "artifact", "kind", "size", "made from", "uri"],
        [
            [
                a["step"],
                a["id"],
                a["kind"],
                size(a["size_bytes"]),
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
        audit_head(doc.get("audit_head")),
        section("Steps", steps),
        section("Gates", table(["step", "gate", "verdict", "why"], gates, raw_columns={2}))
        if gates
        else "",
        *[draw(doc) for draw in SECTIONS],
        section("Artifacts and lineage", artifacts) if doc["artifacts"] else "",
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
