"""Masking what a safety check found in a text: the "redact" action of a safety rule, shared by
the safety service's policies and the data service's safety_filter cleaner."""

from __future__ import annotations

from collections.abc import Sequence

from forgeline.contracts.text_checks import TextMatch

DEFAULT_MASK = "[{label}]"


def redact(text: str, matches: Sequence[TextMatch], mask: str = DEFAULT_MASK) -> str:
    """``text`` with every matched span replaced by ``mask``, where "{label}" stands for the
    match's label upper-cased (an email becomes "[EMAIL]"). Overlapping spans merge into one,
    masked with the label of the span that starts first."""
    spans: list[list] = []
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        start, end = max(0, m.start), min(len(text), m.end)
        if end <= start:
            continue
        if spans and start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end, m.label])
    out, at = [], 0
    for start, end, label in spans:
        out.append(text[at:start])
        out.append(mask.replace("{label}", label.upper()))
        at = end
    out.append(text[at:])
    return "".join(out)
