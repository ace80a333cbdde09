"""A report's two files (report.json and report.html) and their commit as a "report" artifact
made from every artifact the run produced."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forgeline.artifacts import Lineage
from forgeline.gateway.report.document import document
from forgeline.gateway.report.page import render

REPORT_HTML, REPORT_JSON = "report.html", "report.json"


def publish(
    run, events: Iterable, artifacts, producer: str, audit_head: dict[str, Any] | None = None
):
    """Builds ``run``'s report and commits it to ``artifacts`` (an ArtifactStore) as a "report"
    artifact made from every artifact the run produced; returns its ArtifactRecord."""
    doc = document(run, events, audit_head)
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


def write(doc: dict, folder: Path) -> None:
    """Writes report.html and report.json into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_JSON).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (folder / REPORT_HTML).write_text(render(doc), encoding="utf-8")
