"""The HTML pieces the page and its sections are made of, and how they write numbers."""

from __future__ import annotations

import html
from typing import Any

from forgeline.gateway.spec import number


def section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{content}</section>"


def figure(caption: str, svg: str) -> str:
    return f'<figure class="plot"><figcaption>{html.escape(caption)}</figcaption>{svg}</figure>'


def table(header: list[str], rows: list[list[Any]], raw_columns: set[int] = frozenset()) -> str:
    """A table of ``rows`` under ``header``, every cell escaped but those in ``raw_columns``
    (cells the caller wrote as HTML)."""
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


def num(value: Any) -> str:
    """A number as the report writes it (grouped, short); "" for no value."""
    if value is None or value == "":
        return ""
    return number(value, grouped=True)


def points(fraction: Any) -> str:
    """A change of accuracy (a fraction) in signed points: -0.004 -> "-0.40"."""
    return f"{float(fraction) * 100:+.2f}"


def size(n: int) -> str:
    """A byte count in B, KB, MB or GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
