"""The audit log's head after the run, in the page's header: the value to keep for a later
``forgeline audit verify --expect-head``."""

from __future__ import annotations

import html
from typing import Any


def audit_head(head: dict[str, Any] | None) -> str:
    """The header's line for ``head`` (the document's ``audit_head``): "" without an audit log,
    the reason where the head could not be read."""
    if not head:
        return ""
    if "expect_head" not in head:
        return f"<p class=meta>audit log head unknown: {html.escape(str(head.get('error')))}</p>"
    pending = f" ({head['pending']} events not yet delivered)" if head.get("pending") else ""
    return (
        "<p class=meta>audit log head after this run: "
        f"<code>{html.escape(head['expect_head'])}</code>{pending}; keep it to check the log "
        "later with <code>forgeline audit verify --expect-head</code></p>"
    )
