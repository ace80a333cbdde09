"""The HTML pieces the page and its sections are made of, and how they write numbers."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
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


# --- times, durations and links ----------------------------------------------------------------

# Schemes an artifact URI is linked with (anything else, javascript: included, stays text).
LINKED_SCHEMES = ("file", "s3", "gs", "az", "abfs", "hdfs", "http", "https")


def timestamp(value: Any) -> datetime | None:
    """A proto JSON timestamp ("2026-12-06T17:22:08.454169088Z") as an aware datetime; None for
    no value or one that does not read."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python reads at most 6 fractional digits: a proto timestamp may carry nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: Any, seconds: bool = False) -> str:
    """A timestamp as people read it, in UTC: "2026-12-06 19:03 UTC" ("" for none; the text
    itself when it does not read as a timestamp)."""
    moment = timestamp(value)
    if moment is None:
        return str(value or "")
    return moment.astimezone(UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    )


def clock(value: Any) -> str:
    """A timestamp's time of day in UTC: "19:03:12" ("" for none)."""
    moment = timestamp(value)
    return moment.astimezone(UTC).strftime("%H:%M:%S") if moment else ""


def between(start: Any, end: Any) -> float | None:
    """Seconds from one timestamp to another; None where either is missing."""
    a, b = timestamp(start), timestamp(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def duration(seconds: Any) -> str:
    """A duration as people read it: "0.35 s", "43.2 s", "4 min 12 s", "2 h 5 min", "3 d 4 h";
    "" for no value."""
    if seconds is None or seconds == "":
        return ""
    s = float(seconds)
    if s < 0 or s != s:  # a clock that went back, or NaN
        return ""
    if s < 10:
        return f"{s:.2g} s" if s < 1 else f"{s:.1f} s".replace(".0 s", " s")
    if s < 60:
        return f"{s:.0f} s"
    s = round(s)
    for big, small, unit, sub in (
        (86400, 3600, "d", "h"),
        (3600, 60, "h", "min"),
        (60, 1, "min", "s"),
    ):
        if s >= big:
            whole, rest = divmod(s, big)
            part = rest // small
            return f"{whole} {unit} {part} {sub}" if part else f"{whole} {unit}"
    return f"{s} s"


def link(uri: str) -> str:
    """An artifact URI as a link (escaped; it wraps to fit the page), or as text where its
    scheme is not one to link."""
    escaped = html.escape(uri)
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme not in LINKED_SCHEMES:
        return f'<span class="uri">{escaped}</span>'
    return f'<a class="uri" href="{escaped}">{escaped}</a>'


def plugin_text(choice: Any) -> str:
    """A plugin choice ({name, config}) in short: "extract (method textrank)"."""
    if not isinstance(choice, dict) or not choice.get("name"):
        return ""
    config = compact(choice.get("config") or {})
    return f"{choice['name']} ({config})" if config else str(choice["name"])


def compact(value: Any) -> str:
    """A settings value on one line, keys sorted (a Struct's order is not kept)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {compact(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "[" + ", ".join(_item(v) for v in value) + "]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return num(value)
    return "–" if value is None else str(value)


def _item(value: Any) -> str:
    """A list item: a string quoted, so a stop string such as "\\n\\n" shows what it is."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else compact(value)
