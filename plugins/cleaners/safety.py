"""Runs a safety input filter over a dataset's text column, so the filters that screen traffic
(blocklist, PII, a classifier) clean training data too: matching rows are dropped, or what was
found is masked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.contracts.input_filters import SafetyContext, TextCheck, TextMatch
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.plugins.cleaners.normalize import string_column
from forgeline.redaction import DEFAULT_MASK, redact
from forgeline.registry import PluginRegistry

BATCH_ROWS = 256


def _no_model_store(model_id: str, field: str) -> Path:
    raise FailedPrecondition(
        f"{field}: {model_id!r} is a model, and models are only found inside a service "
        "(run this cleaner through the data service)",
        reason="NO_MODEL_STORE",
    )


class SafetyFilter(Cleaner):
    """Drops the rows an input filter (blocklist, pii, classifier...) matches, or masks what
    it found."""

    name = "safety_filter"

    class Config(PluginConfig):
        filter: str = Field(
            ..., min_length=1, description="The input filter to run, e.g. pii or blocklist."
        )
        config: dict[str, Any] = Field(
            default_factory=dict,
            description="The filter's config (see its schema). Regular expressions in it (the "
            "blocklist's regexes) run on RE2 in linear time, which refuses backreferences and "
            "lookaround.",
        )
        action: Literal["drop", "redact"] | None = Field(
            None,
            description='"drop" the matching rows or "redact" (mask) what matched; default: '
            "redact for filters that redact by default (pii), drop for the others.",
        )
        mask: str = Field(
            DEFAULT_MASK,
            description='What replaces a redacted span; "{label}" stands for the match\'s '
            "label upper-cased.",
        )

    @classmethod
    def contract_config(cls) -> dict:
        return {"filter": "blocklist", "config": {"words": ["terrible", "太慢"]}}

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        text = string_column(table, ctx.text_column, "text_column")
        check = self._check(ctx)
        action = self.config.action or ("redact" if check.default_action == "redact" else "drop")
        values = text.to_pylist()
        found: list[list[TextMatch]] = []
        for start in range(0, len(values), BATCH_ROWS):
            ctx.check_cancelled()
            batch = values[start : start + BATCH_ROWS]
            matches = check.find([v or "" for v in batch])
            # A null holds no text (a classifier's verdict on "" is not about it).
            found.extend(m if v is not None else [] for v, m in zip(batch, matches, strict=True))
        hits = [i for i, matches in enumerate(found) if matches]
        labels = Counter(m.label for matches in found for m in matches)
        details: dict[str, Any] = {
            "rows_in": table.num_rows,
            "matches": dict(sorted(labels.items())),
        }
        if action == "drop":
            keep = pa.array([not matches for matches in found], type=pa.bool_())
            out = table.filter(keep)
            details["rows_dropped"] = len(hits)
        else:
            masked = [
                redact(v, m, self.config.mask) if m else v
                for v, m in zip(values, found, strict=True)
            ]
            index = table.column_names.index(ctx.text_column)
            column = pa.chunked_array([pa.array(masked, type=text.type)], type=text.type)
            out = table.set_column(index, table.schema.field(index), column)
            details["rows_redacted"] = len(hits)
        details["rows_out"] = out.num_rows
        examples = [
            (self._shown(values[i], found[i]), f"{action}: {self._reason(found[i])}")
            for i in hits[: self.MAX_EXAMPLES]
        ]
        return CleanResult(out, examples, details)

    def _check(self, ctx: CleanContext) -> TextCheck:
        """The filter, made through the service's registry (its allow-list applies) and
        prepared with its model lookup."""
        registry = ctx.registry or PluginRegistry()
        try:
            registry.get("input_filters", self.config.filter)
        except NotFound as exc:
            raise InvalidArgument.for_field("config.filter", exc.message) from exc
        check = registry.create("input_filters", self.config.filter, self.config.config, "config")
        check.prepare(ctx.safety or SafetyContext(model_folder=_no_model_store))
        return check

    def _shown(self, text: str, matches: list[TextMatch]) -> str:
        """An example never repeats what was found (PII stays out of reports), only its
        context; a verdict on the whole text (a classifier's) shows the text."""
        return redact(
            text, [m for m in matches if (m.start, m.end) != (0, len(text))], self.config.mask
        )

    @staticmethod
    def _reason(matches: list[TextMatch]) -> str:
        best: dict[str, float] = {}
        for m in matches:
            best[m.label] = max(best.get(m.label, 0.0), m.score)
        return ", ".join(
            label if score == 1.0 else f"{label} {score:.2f}" for label, score in best.items()
        )
