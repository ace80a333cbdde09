"""Dataset profiles (DataService/ProfileDataset): rows, label balance, text lengths, duplicate
rate, nulls and warnings."""

from __future__ import annotations

import html

from forgeline.gateway.report.document import found
from forgeline.gateway.report.markup import num, section, table
from forgeline.gateway.report.shapes import is_profile


def section_profile(doc: dict) -> str:
    parts = []
    for step, _, profile in found(doc, is_profile):
        rows = int(float(profile.get("num_rows", 0) or 0))
        columns = profile.get("columns") or []
        duplicate = float(profile.get("duplicate_rate", 0) or 0)
        nulls = {k: int(float(v or 0)) for k, v in (profile.get("null_counts") or {}).items() if v}
        nulls = {k: v for k, v in nulls.items() if v}
        meta = (
            f"<p class=meta>{rows:,} rows"
            + (
                f" of {html.escape(str(profile['dataset_id']))}"
                if profile.get("dataset_id")
                else ""
            )
            + (f" · {len(columns)} columns" if columns else "")
            + f" · duplicate rate {duplicate * 100:.2f}% (rows whose normalized text repeats an "
            "earlier row) · nulls: "
            + (", ".join(f"{html.escape(k)} {v:,}" for k, v in sorted(nulls.items())) or "none")
            + "</p>"
        )
        labels = profile.get("label_counts") or {}
        counts = sorted(
            ((str(k), int(float(v or 0))) for k, v in labels.items()),
            key=lambda kv: (-kv[1], kv[0]),
        )
        total = sum(c for _, c in counts) or 1
        balance = (
            "<h3>Label balance</h3>"
            + table(
                ["label", "rows", "share", ""],
                [
                    [
                        html.escape(label),
                        f"{count:,}",
                        f"{count / total * 100:.1f}%",
                        f'<span class="bar" style="width: {count / total * 100:.1f}%"></span>',
                    ]
                    for label, count in counts
                ],
                raw_columns={0, 3},
            )
            if counts
            else ""
        )
        length = profile.get("text_length") or {}
        lengths = (
            "<h3>Text length (characters)</h3>"
            + table(
                ["min", "median", "mean", "p95", "max", "std"],
                [[num(length.get(k, 0)) for k in ("min", "p50", "mean", "p95", "max", "std")]],
            )
            if length
            else ""
        )
        warnings = profile.get("warnings") or []
        warned = (
            "<h3>Warnings</h3><ul>"
            + "".join(
                f"<li><code>{html.escape(str(w.get('code', '')))}</code> "
                f"{html.escape(str(w.get('message', '')))}</li>"
                for w in warnings
                if isinstance(w, dict)
            )
            + "</ul>"
            if warnings
            else ""
        )
        parts.append(section(f"Data profile — {step}", meta + balance + lengths + warned))
    return "".join(parts)
