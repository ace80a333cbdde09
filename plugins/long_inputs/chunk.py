"""Chunking: summarize the document's chunks, then summarize the summaries."""

from __future__ import annotations

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.long_inputs import (
    GenerateBatch,
    LongGeneration,
    LongInputStrategy,
    ShortenedInput,
    TokenCounter,
    check_budget,
    generate_checked,
)
from forgeline.text_units import longest_prefix, sentence_spans


class Chunk(LongInputStrategy):
    """Cuts the document at sentence and paragraph boundaries into chunks within the token
    budget, generates for each chunk, then generates from their joined outputs, chunking again
    while those do not fit; trains on the first chunk."""

    name = "chunk"

    class Config(PluginConfig):
        max_rounds: int = Field(
            4,
            ge=1,
            le=10,
            description="Most rounds of generating from chunks. When the joined outputs still "
            "do not fit after the last round (or stop getting shorter), their start within the "
            "budget is used, and the details say how many tokens were left out.",
        )
        separator: str = Field(
            "\n", max_length=100, description="What joins the outputs of one round's chunks."
        )

    def shorten(self, text: str, budget: int, count_tokens: TokenCounter) -> ShortenedInput:
        check_budget(budget)
        total = count_tokens(text)
        chunks = split_into_chunks(text, budget, count_tokens) if total > budget else [text]
        first = chunks[0] if chunks else ""
        details = {"chunks": len(chunks), "kept_chars": len(first), "total_chars": len(text)}
        return ShortenedInput(first, count_tokens(first), total, details)

    def generate(
        self,
        text: str,
        budget: int,
        count_tokens: TokenCounter,
        generate_batch: GenerateBatch,
    ) -> LongGeneration:
        check_budget(budget)
        current, current_tokens = text, count_tokens(text)
        rounds: list[dict[str, int]] = []
        calls = inputs = 0
        while current_tokens > budget and len(rounds) < self.config.max_rounds:
            chunks = split_into_chunks(current, budget, count_tokens)
            outputs = generate_checked(generate_batch, chunks)
            calls, inputs = calls + 1, inputs + len(chunks)
            joined = self.config.separator.join(o.strip() for o in outputs)
            joined_tokens = count_tokens(joined)
            rounds.append(
                {
                    "chunks": len(chunks),
                    "input_tokens": current_tokens,
                    "output_tokens": joined_tokens,
                }
            )
            shrinking = joined_tokens < current_tokens
            current, current_tokens = joined, joined_tokens
            if not shrinking:
                break
        details: dict[str, object] = {"rounds": rounds, "total_tokens": count_tokens(text)}
        if current_tokens > budget:  # no round made it fit: say what the last step leaves out
            current = longest_prefix(current, budget, count_tokens)
            details["final_input_truncated"] = {
                "kept_tokens": count_tokens(current),
                "total_tokens": current_tokens,
            }
        (output,) = generate_checked(generate_batch, [current])
        return LongGeneration(output, calls=calls + 1, inputs=inputs + 1, details=details)


def split_into_chunks(text: str, budget: int, count_tokens: TokenCounter) -> list[str]:
    """``text`` in consecutive pieces of whole sentences within ``budget`` tokens each (slices
    of the text, so its own line breaks stay); a sentence longer than the budget is cut into
    pieces of its own. Nothing is left out: the pieces hold every sentence."""
    spans = sentence_spans(text)
    chunks: list[str] = []
    i = 0
    while i < len(spans):
        start = spans[i][0]
        used = count_tokens(text[start : spans[i][1]])
        if used > budget:
            chunks.extend(_cut(text[start : spans[i][1]], budget, count_tokens))
            i += 1
            continue
        j = i + 1  # spans[i:j] fit so far
        while j < len(spans):
            used += count_tokens(text[spans[j][0] : spans[j][1]])
            if used > budget:
                break
            j += 1
        # The parts' counts need not add up to the whole's: correct the estimate both ways.
        while j > i + 1 and count_tokens(text[start : spans[j - 1][1]]) > budget:
            j -= 1
        while j < len(spans) and count_tokens(text[start : spans[j][1]]) <= budget:
            j += 1
        chunks.append(text[start : spans[j - 1][1]])
        i = j
    return chunks


def _cut(sentence: str, budget: int, count_tokens: TokenCounter) -> list[str]:
    """A sentence longer than the budget, in consecutive pieces within it."""
    pieces = []
    rest = sentence
    while rest:
        piece = longest_prefix(rest, budget, count_tokens)
        if not piece:  # not even one character fits: a budget below one character's tokens
            piece = rest[:1]
        pieces.append(piece)
        rest = rest[rest.index(piece) + len(piece) :].lstrip()
    return pieces
