"""Data cleaning (DataService/CleanDataset): the rows each cleaner kept, as a funnel."""

from __future__ import annotations

from forgeline.gateway.report import plots
from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import figure, num, section, table
from forgeline.gateway.report.shapes import is_cleaning


def section_cleaning(doc: dict) -> str:
    parts = []
    for step, _, reports in found(doc, is_cleaning):
        rows = table(
            ["cleaner", "rows in", "rows out", "removed", "seconds"],
            [
                [
                    r["cleaner"],
                    f"{int(r['rows_in']):,}",
                    f"{int(r['rows_out']):,}",
                    f"{int(r['rows_in']) - int(r['rows_out']):,}",
                    num(r.get("seconds")),
                ]
                for r in reports
            ],
        )
        parts.append(figure(f"Cleaning funnel — {step}", plots.funnel_svg(reports)) + rows)
    return section("Data cleaning", "".join(parts)) if parts else ""
