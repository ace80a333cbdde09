"""ROUGE-1, ROUGE-2 and ROUGE-L F1 with the rouge-score package, for any language.

rouge-score's default tokenizer keeps only ``[a-z0-9]``: every other character, so all of a
Chinese text, is deleted, and two Chinese summaries score 0 whatever they say. This plugin hands
rouge-score its own tokenizer (forgeline.text_units.words): identical tokens on ASCII text, so
English scores are the published ROUGE, while letters beyond ASCII stay and CJK text is scored per
character, as Chinese summarization benchmarks do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.generation_metrics import GenerationMetric, GenerationScores, check_pairs
from forgeline.text_units import words

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# Porter is an English stemmer; rouge-score stems only tokens longer than 3 characters.
_MIN_STEM_LENGTH = 4


class RougeTokenizer:
    """A rouge-score Tokenizer (an object with ``tokenize(text) -> list[str]``)."""

    def __init__(self, mode: str, stem: bool) -> None:
        from nltk.stem import porter  # rouge-score's own dependency; the stemmer needs no data

        self.mode = mode
        self.stemmer = porter.PorterStemmer() if stem else None

    def tokenize(self, text: str) -> list[str]:
        if self.mode == "characters":
            tokens = [c for word in words(text, cjk=False) for c in word]
        else:
            tokens = words(text, cjk=self.mode == "auto")
        if self.stemmer is None:
            return tokens
        return [
            self.stemmer.stem(t) if len(t) >= _MIN_STEM_LENGTH and t.isascii() else t
            for t in tokens
        ]


class Rouge(GenerationMetric):
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 (rouge-score), each in 0..1: the mean over examples and
    each example's own. Chinese and Japanese are scored per character, where rouge-score's own
    tokenizer would delete them."""

    name = "rouge"

    class Config(PluginConfig):
        tokenize: Literal["auto", "words", "characters"] = Field(
            "auto",
            description="auto: every CJK character is a token, other text is cut into words "
            "(on text without CJK, exactly rouge-score's tokens); words: runs of letters and "
            "digits, a run of CJK characters being one word; characters: every letter and "
            "digit is a token.",
        )
        stemming: bool = Field(
            False,
            description="Porter-stem English words longer than 3 characters, as rouge-score's "
            "use_stemmer does (many English summarization papers report ROUGE with it).",
        )

    def score(self, predictions: list[str], references: list[str]) -> GenerationScores:
        from rouge_score import rouge_scorer

        check_pairs(predictions, references)
        tokenizer = RougeTokenizer(self.config.tokenize, self.config.stemming)
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizer)
        per_example: dict[str, list[float]] = {key: [] for key in ROUGE_TYPES}
        for prediction, reference in zip(predictions, references, strict=True):
            found = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
            for key in ROUGE_TYPES:
                per_example[key].append(float(found[key].fmeasure))
        corpus = {key: sum(values) / len(values) for key, values in per_example.items()}
        details = {
            "tokenize": self.config.tokenize,
            "stemming": self.config.stemming,
            "aggregate": "mean of per-example F1",
        }
        return GenerationScores(corpus, per_example, details)
