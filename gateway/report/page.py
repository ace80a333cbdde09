"""The report's HTML page, drawn from the document alone: a summary card (the run, its times,
headline scores, compression and gates), the configuration, its steps, the result sections, its
artifacts and the pipeline; self-contained (no script, no fetch)."""

from __future__ import annotations

import html

from forgeline.gateway.report import overview
from forgeline.gateway.report.markup import clock, duration, link, num, section, size, table
from forgeline.gateway.report.sections import SECTIONS
from forgeline.gateway.report.sections.audit_head import audit_head
from forgeline.gateway.report.sections.config import section_config
from forgeline.gateway.report.sections.summary import summary_card


def render(doc: dict) -> str:
    """The self-contained HTML page of a report document (one written before the summary and
    configuration existed too: they are read again from its steps and pipeline)."""
    summary = overview.summary(doc)
    recorded = doc.get("config") or {}
    config = overview.config(doc, recorded.get("versions") or {})
    if "config" not in doc:
        config.pop("versions")  # say so, rather than show none
    steps = table(
        ["step", "call", "state", "cached", "started", "duration", "metrics", "message"],
        [
            [
                s["name"],
                s["call"],
                f'<span class="state {html.escape(s["state"].lower())}">'
                f"{html.escape(s['state'])}</span>",
                "yes" if s["cached"] else "",
                clock(s.get("start_time")),
                duration(s["seconds"]),
                ", ".join(f"{k} {num(v)}" for k, v in sorted(s["metrics"].items())[:6]),
                s["message"],
            ]
            for s in doc["steps"]
        ],
        raw_columns={2},
    )
    artifacts = table(
        ["step", "artifact", "kind", "size", "made from", "uri"],
        [
            [
                html.escape(a["step"]),
                html.escape(a["id"]),
                html.escape(_kind(a)),
                size(a["size_bytes"]),
                html.escape(", ".join(a["parent_ids"])),
                link(a["uri"]),
            ]
            for a in doc["artifacts"]
        ],
        raw_columns=set(range(6)),
    )
    body = [
        summary_card(summary, doc.get("message", ""), doc.get("attempt")),
        audit_head(doc.get("audit_head")),
        section_config(config),
        section("Steps", steps),
        *[draw(doc) for draw in SECTIONS],
        section("Artifacts and lineage", artifacts) if doc["artifacts"] else "",
        "<details><summary>Pipeline (YAML)</summary><pre>"
        + html.escape(doc["pipeline_yaml"])
        + "</pre></details>",
    ]
    return PAGE.format(title=html.escape(f"{summary['name']} · report"), body="\n".join(body))


def _kind(artifact: dict) -> str:
    """An artifact's kind, and the split it is where a split step made it."""
    from forgeline.gateway.report.document import split_of

    split = artifact.get("split") or split_of(artifact.get("field", ""))
    return f"{artifact['kind']} ({split} split)" if split else artifact["kind"]


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2330; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; margin-top: 0; }}
h2 {{ margin-top: 2rem; border-bottom: 1px solid #ddd; }} h3 {{ font-size: 1rem; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }}
th, td {{ text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eee;
         vertical-align: top; overflow-wrap: anywhere; }}
th {{ background: #f5f6f8; }} .meta {{ color: #667; }}
.state {{ padding: .05rem .45rem; border-radius: .6rem; font-size: .85em; background: #eee; }}
.succeeded {{ background: #d8f3dc; }} .failed {{ background: #fde2e1; }}
.cancelled {{ background: #fff3c4; }} .skipped {{ color: #888; }}
.card {{ border: 1px solid #dde1e7; border-radius: .5rem; padding: 1rem 1.2rem;
        background: #fbfcfd; }}
dl.summary {{ display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem;
             margin: .5rem 0 0; }}
dl.summary dt {{ color: #667; }} dl.summary dd {{ margin: 0; min-width: 0; }}
.uri {{ overflow-wrap: anywhere; word-break: break-all; }}
.pair {{ display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }}
.pair figure {{ flex: 0 1 auto; }} .per-class {{ flex: 1 1 320px; }}
.bar {{ display: inline-block; height: .7rem; background: #4c78a8; }}
figure {{ margin: 1rem 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
figure svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f5f6f8; padding: .8rem; overflow: auto; }}
</style></head>
<body>
{body}
</body></html>
"""
