"""Truncation: the document's start (and optionally its end) within the budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.long_inputs import (
    LongInputStrategy,
    ShortenedInput,
    TokenCounter,
    check_budget,
)
from forgeline.text_units import longest_prefix, longest_suffix


class Truncate(LongInputStrategy):
    """Keeps the start of the document within the token budget, or its start and its end (a
    judgment's facts open it and its holding closes it); the details say which characters were
    left out."""

    name = "truncate"

    class Config(PluginConfig):
        keep: Literal["head", "head_tail"] = Field(
            "head", description="head: the first tokens; head_tail: the first and the last."
        )
        tail_share: float = Field(
            0.25,
            gt=0,
            lt=1,
            description="head_tail: the share of the budget that goes to the end of the document.",
        )
        marker: str = Field(
            "\n...\n",
            max_length=100,
            description="head_tail: what stands between the head and the tail (its tokens count "
            "against the budget).",
        )

    def shorten(self, text: str, budget: int, count_tokens: TokenCounter) -> ShortenedInput:
        check_budget(budget)
        total = count_tokens(text)
        if total <= budget:
            return ShortenedInput(text, total, total, _chars("all", len(text), len(text)))
        if self.config.keep == "head_tail":
            shortened = self._head_tail(text, budget, count_tokens)
            if shortened is not None:
                joined, details = shortened
                return ShortenedInput(joined, count_tokens(joined), total, details)
        head = longest_prefix(text, budget, count_tokens)
        details = _chars("head", len(head), len(text))
        return ShortenedInput(head, count_tokens(head), total, details)

    def _head_tail(
        self, text: str, budget: int, count_tokens: TokenCounter
    ) -> tuple[str, dict] | None:
        """Head + marker + tail within the budget, or None when the budget is too small to hold
        both (the head alone is kept then)."""
        room = budget - count_tokens(self.config.marker)
        tail_budget = int(room * self.config.tail_share)
        if tail_budget < 1 or room - tail_budget < 1:
            return None
        tail = longest_suffix(text, tail_budget, count_tokens)
        head_room = room - count_tokens(tail)
        rest = text[: len(text) - len(tail)] if tail else text
        head = longest_prefix(rest, head_room, count_tokens) if head_room > 0 else ""
        joined = head + self.config.marker + tail
        while count_tokens(joined) > budget and head:  # counts of the parts need not add up
            head = longest_prefix(head, max(count_tokens(head) - 1, 0), count_tokens)
            joined = head + self.config.marker + tail
        if not head or count_tokens(joined) > budget:
            return None
        details = _chars("head_tail", len(head) + len(tail), len(text))
        return joined, {**details, "head_chars": len(head), "tail_chars": len(tail)}


def _chars(kept: str, kept_chars: int, total_chars: int) -> dict[str, object]:
    """The account of what was kept, in characters of the document."""
    return {
        "kept": kept,
        "kept_chars": kept_chars,
        "total_chars": total_chars,
        "dropped_chars": total_chars - kept_chars,
    }
