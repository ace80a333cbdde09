"""Generative evaluations (EvaluateModel with ``generation``, summarization baselines): a score
table with one row per system and the best of each metric marked, a few documents with every
system's output side by side, and the settings each system generated with.

Outputs are model text: every piece is escaped, and a long one is clipped with its full text
behind a <details>, so the page stays readable and nothing in it runs.
"""

from __future__ import annotations

import html
from typing import Any

from forgeline.gateway.report.markup import compact, num, plugin_text, section, table
from forgeline.gateway.report.systems import Comparison, System, comparison

# Documents shown side by side; every sample stays in report.json.
DOCUMENTS_SHOWN = 5
# Characters of a text shown before "…" (a source excerpt holds at most 500).
CLIP = 600
TEXT = '<div style="white-space: pre-wrap">{}</div>'
# Settings keys that have a column of their own.
COLUMNS = {
    "baseline",
    "config",
    "decoding",
    "metrics",
    "reference_column",
    "long_inputs",
    "input_token_budget",
    "max_examples",
    "seed",
    "rows",
}


def section_generation(doc: dict) -> str:
    found = comparison(doc)
    if not found.systems:
        return ""
    from forgeline.gateway.report.overview import dataset_label, describe_dataset, split_datasets

    splits = split_datasets(doc)
    where = {s.name: describe_dataset(dataset_label(s.dataset, splits)) for s in found.systems}
    return _scores(found, where) + _documents(found) + _settings(found.systems)


def _scores(found: Comparison, where: dict[str, str]) -> str:
    notes = any(s.note for s in found.systems)
    outputs = any(s.outputs_id for s in found.systems)
    header = ["system", "what", *found.metrics, "examples"]
    header += ["all outputs"] if outputs else []
    header += ["split"]
    header += ["comparable?"] if notes else []
    rows = []
    for s in found.systems:
        row = [html.escape(s.name), html.escape(s.source)]
        row += [_score(s, metric) for metric in found.metrics]
        row.append(f"{s.num_examples:,}")
        row += [html.escape(s.outputs_id)] if outputs else []
        row.append(html.escape(where.get(s.name) or "not known"))
        if notes:
            row.append(
                '<span class="state cancelled">not comparable</span> ' + html.escape(s.note)
                if s.note
                else "yes"
            )
        rows.append(row)
    intro = (
        "<p class=meta>One row per system: each summarization baseline and each model "
        "evaluated by generation. Scores are in 0..1, higher is better; ★ marks the best of "
        "each column among the systems scored on the same rows.</p>"
    )
    return section("Generation scores", intro + table(header, rows, set(range(len(header)))))


def _score(system: System, metric: str) -> str:
    if metric not in system.metrics:
        return "–"
    value = num(system.metrics[metric])
    return f"<strong>{value} ★</strong>" if metric in system.best else value


def _documents(found: Comparison) -> str:
    if not found.documents:
        return ""
    shown = found.documents[:DOCUMENTS_SHOWN]
    count = len(found.documents)
    which = f"{len(shown)} of the {count}" if len(shown) < count else f"The {count}"
    intro = (
        f"<p class=meta>{which} documents the systems sampled, joined by row (those most "
        "systems sampled first); every sample is in report.json.</p>"
    )
    parts = []
    for document in shown:
        systems = list(document.outputs)
        parts.append(
            f"<h3>Row {document.row:,}</h3>"
            + "<p><strong>Source</strong> (excerpt)</p>"
            + _text(document.source_excerpt)
            + table(
                ["reference", *systems],
                [[_text(document.reference), *(_text(document.outputs[s]) for s in systems)]],
                set(range(len(systems) + 1)),
            )
        )
    return section("Documents side by side", intro + "".join(parts))


def _text(value: str) -> str:
    """A text as the page shows it: escaped, its line breaks kept, clipped with a visible "…"
    past CLIP characters with the full text behind a <details>."""
    if not value:
        return '<span class="meta">(empty)</span>'
    if len(value) <= CLIP:
        return TEXT.format(html.escape(value))
    return (
        TEXT.format(html.escape(value[:CLIP].rstrip()) + " …")
        + f"<details><summary>full text ({len(value):,} characters)</summary>"
        + TEXT.format(html.escape(value))
        + "</details>"
    )


def _settings(systems: list[System]) -> str:
    rows = []
    for s in systems:
        settings = s.settings
        what = s.source
        if s.baseline and settings.get("config"):
            what += f" ({compact(settings['config'])})"
        rows.append(
            [
                s.name,
                what,
                _decoding(settings.get("decoding")),
                ", ".join(plugin_text(m) for m in settings.get("metrics") or []),
                str(settings.get("reference_column", "")),
                plugin_text(settings.get("long_inputs")),
                num(settings.get("input_token_budget")),
                _rows(s),
                compact({k: v for k, v in settings.items() if k not in COLUMNS}),
            ]
        )
    header = ["system", "what", "decoding", "metrics", "reference column", "long inputs"]
    header += ["input tokens", "rows", "other"]
    return section("Generation settings", table(header, rows))


def _rows(system: System) -> str:
    """How many rows it was scored on, and the seed when they were a random subset."""
    seed = system.subset_seed
    subset = f", a random subset (seed {seed})" if seed is not None else ""
    return f"{system.num_examples:,}{subset}"


def _decoding(options: Any) -> str:
    """The decoding options in short: the strategy, max_new_tokens, and what differs from the
    defaults (a strategy's other fields keep theirs)."""
    if not isinstance(options, dict):
        return ""
    from forgeline.generation import DecodingOptions

    defaults = DecodingOptions().model_dump()
    shown = {
        k: v
        for k, v in options.items()
        if k in ("strategy", "max_new_tokens") or v != defaults.get(k)
    }
    strategy = str(shown.pop("strategy", ""))
    return ", ".join(filter(None, [strategy, compact(shown)]))
