"""Fairness (SafetyService/AuditFairness and MitigateFairness): the checks' verdict, overall and
per-group metrics (before and after a mitigation), and the per-group rates as bars."""

from __future__ import annotations

import html

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, points, section, table
from forgeline.gateway.report.shapes import is_fairness


def section_fairness(doc: dict) -> str:
    parts = []
    for step, _, result in found(doc, is_fairness):
        checks = result.get("checks") or []
        verdict = (
            ""
            if not checks
            else '<span class="state succeeded">passed</span> '
            if int(result.get("passed", 0) or 0)
            else '<span class="state failed">failed</span> '
        )
        failed = [c for c in checks if not c.get("passed")]
        summary = verdict + "; ".join(
            f"{c['metric']} {num(c.get('value', 0))} (must be {c['op']} {num(c['threshold'])})"
            for c in (failed or checks)
        )
        columns = ["group", "count", "accuracy", "selection rate", "FPR", "FNR"]
        if "metrics" in result:
            metrics = result["metrics"]
            runs = [("", metrics)]
            title = f"Fairness audit — {step}"
            summary += (
                f" · {html.escape(str(result.get('subject', '')))} on "
                f"{html.escape(', '.join(result.get('sensitive_columns') or []))}"
            )
        else:
            runs = [("before", result["before"]), ("after", result["after"])]
            title = f"Fairness mitigation — {step}"
            summary += (
                f" · accuracy {points(result.get('accuracy_delta', 0))} points, demographic "
                f"parity difference {points(result.get('demographic_parity_difference_delta', 0))}"
                " points"
            )
        overall = table(
            ["", "accuracy", "selection rate", "DP difference", "DP ratio", "EO difference"],
            [
                [
                    label or "overall",
                    num(m.get("accuracy", 0)),
                    num(m.get("selection_rate", 0)),
                    num(m.get("demographic_parity_difference", 0)),
                    num(m.get("demographic_parity_ratio", 0)),
                    num(m.get("equalized_odds_difference", 0)),
                ]
                for label, m in runs
            ],
        )
        groups = table(
            ([""] if len(runs) > 1 else []) + columns,
            [
                ([label] if len(runs) > 1 else [])
                + [
                    g.get("group", ""),
                    f"{int(g.get('count', 0) or 0):,}",
                    num(g.get("accuracy", 0)),
                    num(g.get("selection_rate", 0)),
                    num(g.get("false_positive_rate", 0)),
                    num(g.get("false_negative_rate", 0)),
                ]
                for label, m in runs
                for g in m["groups"]
            ],
        )
        drawn = figure("per-group rates", plots.fairness_svg(runs))
        parts.append(section(title, f"<p class=meta>{summary}</p>" + overall + groups + drawn))
    return "".join(parts)
