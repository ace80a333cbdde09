"""Exact match: the share of predictions equal to their reference after normalisation."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.generation_metrics import GenerationMetric, GenerationScores, check_pairs

_SPACES = re.compile(r"\s+")


class ExactMatch(GenerationMetric):
    """The share of predictions equal to their reference (0..1), after the normalisation the
    config chooses; per example, 1 or 0."""

    name = "exact_match"

    class Config(PluginConfig):
        strip: bool = Field(True, description="Ignore whitespace at both ends.")
        casefold: bool = Field(
            False, description="Ignore case (Unicode casefolding: 'Straße' equals 'STRASSE')."
        )
        whitespace: Literal["keep", "collapse", "remove"] = Field(
            "collapse",
            description="Whitespace inside the text: keep as is, collapse every run into one "
            "space, or remove it all (Chinese, where spaces carry no meaning).",
        )

    def normalise(self, text: str) -> str:
        """``text`` as it is compared."""
        c = self.config
        if c.whitespace == "collapse":
            text = _SPACES.sub(" ", text)
        elif c.whitespace == "remove":
            text = _SPACES.sub("", text)
        if c.strip:
            text = text.strip()
        return text.casefold() if c.casefold else text

    def score(self, predictions: list[str], references: list[str]) -> GenerationScores:
        check_pairs(predictions, references)
        matches = [
            1.0 if self.normalise(p) == self.normalise(r) else 0.0
            for p, r in zip(predictions, references, strict=True)
        ]
        details = self.config.model_dump()
        return GenerationScores(
            {"exact_match": sum(matches) / len(matches)}, {"exact_match": matches}, details
        )
