"""BLEU and chrF with sacrebleu, the reference implementation papers report (its signature
names every setting, so a score can be reproduced). sacrebleu reports 0..100; these plugins
divide by 100 so every generation metric is in 0..1."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.generation_metrics import (
    GenerationMetric,
    GenerationScores,
    check_pairs,
    from_percent,
)
from forgeline.text_units import has_cjk


class Bleu(GenerationMetric):
    """Corpus BLEU (sacrebleu) in 0..1. Chinese needs its own tokenizer ('zh'), which auto picks
    when a reference holds CJK characters."""

    name = "bleu"

    class Config(PluginConfig):
        tokenize: Literal["auto", "13a", "intl", "zh", "char", "none"] = Field(
            "auto",
            description="sacrebleu's tokenizer: 13a (its default, for English and most "
            "languages), intl (Unicode punctuation), zh (Chinese: a token per CJK character), "
            "char, none (already tokenized); auto is zh when any reference holds CJK "
            "characters, else 13a.",
        )
        lowercase: bool = Field(False, description="Compare lowercased text.")
        smooth_method: Literal["exp", "floor", "add-k", "none"] = Field(
            "exp", description="sacrebleu's smoothing of zero n-gram counts (exp is its default)."
        )

    def score(self, predictions: list[str], references: list[str]) -> GenerationScores:
        from sacrebleu.metrics import BLEU

        check_pairs(predictions, references)
        tokenize = self.config.tokenize
        if tokenize == "auto":
            tokenize = "zh" if any(has_cjk(r) for r in references) else "13a"
        metric = BLEU(
            tokenize=tokenize,
            lowercase=self.config.lowercase,
            smooth_method=self.config.smooth_method,
        )
        result = metric.corpus_score(predictions, [references])
        details = {
            "signature": str(metric.get_signature()),
            "tokenize": tokenize,
            "precisions": [from_percent(p) for p in result.precisions],
            "brevity_penalty": result.bp,
        }
        # Sentence BLEU is not a meaningful per-example score (it is mostly 0 on short texts).
        return GenerationScores({"bleu": from_percent(result.score)}, {}, details)


class Chrf(GenerationMetric):
    """chrF, or chrF++ with word n-grams (sacrebleu), in 0..1 per corpus and per example. It
    compares character n-grams, so it needs no tokenizer and suits Chinese as it is."""

    name = "chrf"

    class Config(PluginConfig):
        word_order: int = Field(
            0, ge=0, le=2, description="Word n-gram order: 0 for chrF, 2 for chrF++."
        )
        char_order: int = Field(6, ge=1, le=10, description="Character n-gram order.")
        beta: float = Field(
            2.0,
            gt=0,
            le=10,
            description="Weight of recall against precision (2: recall counts twice as much).",
        )
        lowercase: bool = Field(False, description="Compare lowercased text.")

    def score(self, predictions: list[str], references: list[str]) -> GenerationScores:
        from sacrebleu.metrics import CHRF

        check_pairs(predictions, references)
        c = self.config
        metric = CHRF(
            char_order=c.char_order, word_order=c.word_order, beta=c.beta, lowercase=c.lowercase
        )
        corpus = from_percent(metric.corpus_score(predictions, [references]).score)
        per_example = [
            from_percent(metric.sentence_score(p, [r]).score)
            for p, r in zip(predictions, references, strict=True)
        ]
        details = {"signature": str(metric.get_signature())}
        return GenerationScores({"chrf": corpus}, {"chrf": per_example}, details)
