"""Extraction: the document's most salient sentences, in order, within the budget."""

from __future__ import annotations

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.long_inputs import (
    LongInputStrategy,
    ShortenedInput,
    TokenCounter,
    check_budget,
)
from forgeline.salience import SalienceMethod, pick_salient, sentence_salience
from forgeline.text_units import longest_prefix, split_sentences

SEPARATOR = "\n"


class Extract(LongInputStrategy):
    """Keeps the document's most salient sentences (TextRank, or TF-IDF centrality, over
    sentence similarity) in document order within the token budget; the details say how many
    sentences were kept (their indices)."""

    name = "extract"

    class Config(PluginConfig):
        method: SalienceMethod = Field(
            "textrank",
            description="textrank: PageRank over the sentence-similarity graph; centrality: "
            "each sentence's summed similarity to the others.",
        )
        damping: float = Field(0.85, gt=0, lt=1, description="textrank: PageRank's damping.")

    def shorten(self, text: str, budget: int, count_tokens: TokenCounter) -> ShortenedInput:
        check_budget(budget)
        total = count_tokens(text)
        sentences = split_sentences(text)
        if total <= budget:
            everything = list(range(len(sentences)))
            details = {"kept_sentences": everything, "total_sentences": len(sentences)}
            return ShortenedInput(text, total, total, details)
        scores = sentence_salience(sentences, self.config.method, self.config.damping)
        chosen = pick_salient(sentences, scores, budget, count_tokens, separator=SEPARATOR)
        details: dict[str, object] = {
            "method": self.config.method,
            "kept_sentences": chosen,  # indices into the document's sentences, in order
            "total_sentences": len(sentences),
        }
        if chosen:
            kept = SEPARATOR.join(sentences[i] for i in chosen)
        else:  # every sentence is longer than the budget: the start of the most salient one
            top = max(range(len(sentences)), key=lambda i: (scores[i], -i))
            kept = longest_prefix(sentences[top], budget, count_tokens)
            details["cut_sentence"] = top
        details.update(kept_chars=len(kept), total_chars=len(text))
        return ShortenedInput(kept, count_tokens(kept), total, details)
