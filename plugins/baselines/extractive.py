"""Extractive summarization baselines: the anchor every abstractive summary is judged against.
They need no training (the reference summaries they are handed are ignored) and store no model.

Budgets are counted in words (a CJK character counts one: forgeline.text_units.word_count), since
a baseline has no model tokenizer; that is also how ROUGE's auto tokenization counts.
"""

from __future__ import annotations

import time

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.baselines import SUMMARIZATION, Baseline, BaselineContext, BaselineResult
from forgeline.salience import SalienceMethod, pick_salient, sentence_salience
from forgeline.text_units import longest_prefix, split_sentences, word_count

SEPARATOR = "\n"


class ExtractiveConfig(PluginConfig):
    """What both extractive baselines take: how many sentences, and a word budget."""

    sentences: int | None = Field(
        3,
        ge=1,
        le=10_000,
        description="At most this many sentences per summary (null: as many as max_words allows).",
    )
    max_words: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="At most this many words per summary, a CJK character counting one word "
        "(null: no limit beyond sentences). A first sentence longer than this is cut.",
    )


class LeadK(Baseline):
    """The first sentences of each document as its summary (lead-k), up to a sentence count
    or a word budget: the classic baseline of news and legal summarization."""

    name = "lead_k"
    task = SUMMARIZATION
    Config = ExtractiveConfig

    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        started = time.perf_counter()
        ctx.check_cancelled()
        summaries = []
        for text in eval_texts:
            sentences = split_sentences(text)
            picked = _lead(sentences, self.config.sentences, self.config.max_words)
            summaries.append(picked)
        return BaselineResult(summaries, time.perf_counter() - started, details=_details(self))


class TextRank(Baseline):
    """The most central sentences of each document (TextRank: PageRank over TF-IDF sentence
    similarity, or plain centrality) in document order, up to a sentence count or a word
    budget."""

    name = "textrank"
    task = SUMMARIZATION

    class Config(ExtractiveConfig):
        method: SalienceMethod = Field(
            "textrank",
            description="textrank: PageRank over the sentence-similarity graph; centrality: "
            "each sentence's summed similarity to the others.",
        )
        damping: float = Field(0.85, gt=0, lt=1, description="textrank: PageRank's damping.")

    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        started = time.perf_counter()
        ctx.check_cancelled()
        c = self.config
        summaries = []
        for text in eval_texts:
            sentences = split_sentences(text)
            scores = sentence_salience(sentences, c.method, c.damping)
            chosen = pick_salient(
                sentences, scores, c.max_words, word_count, c.sentences, separator=SEPARATOR
            )
            if not chosen and sentences:  # every sentence is over the budget: cut the top one
                top = max(range(len(sentences)), key=lambda i: (scores[i], -i))
                summaries.append(longest_prefix(sentences[top], c.max_words or 1, word_count))
            else:
                summaries.append(SEPARATOR.join(sentences[i] for i in chosen))
        return BaselineResult(summaries, time.perf_counter() - started, details=_details(self))


def _lead(sentences: list[str], limit: int | None, max_words: int | None) -> str:
    """The first ``limit`` sentences, stopping before the one that would pass ``max_words``."""
    kept: list[str] = []
    used = 0
    for sentence in sentences[:limit]:
        words = word_count(sentence)
        if max_words is not None and used + words > max_words:
            if not kept:
                kept.append(longest_prefix(sentence, max_words, word_count))
            break
        kept.append(sentence)
        used += words
    return SEPARATOR.join(kept)


def _details(baseline: Baseline) -> dict[str, object]:
    return {"task": SUMMARIZATION, **baseline.config.model_dump()}
