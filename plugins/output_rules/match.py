"""Regex and keyword conditions on a model's answer, matched case- and width-insensitively by
the same code as the input blocklist."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.output_rules import OutputMatcher, TextMatch
from forgeline.plugins.input_filters.text import (
    REGEX_HELP,
    WORDS_HELP,
    TextMatcher,
    clean_words,
    compile_patterns,
)


class Regex(OutputMatcher):
    """Acts on what regular expressions find in an answer (after NFKC; case-insensitive by
    default)."""

    name = "regex"
    default_action = "block"

    class Config(PluginConfig):
        patterns: list[str] = Field(
            ...,
            min_length=1,
            description="Regular expressions, matched against the answer after NFKC "
            "(full-width letters and digits become ASCII) and, with ignore_case, case folding. "
            + REGEX_HELP,
        )
        ignore_case: bool = Field(True, description="Match regardless of letter case.")
        label: str = Field("regex", min_length=1, description="Label of every match.")

        @field_validator("patterns")
        @classmethod
        def _patterns(cls, patterns: list[str]) -> list[str]:
            compile_patterns(patterns, field="patterns")
            return patterns

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._matcher = TextMatcher(
            patterns=self.config.patterns,
            ignore_case=self.config.ignore_case,
            pattern_label=self.config.label,
        )

    @classmethod
    def contract_config(cls) -> dict:
        return {"patterns": [r"\bpassword\s*[:=]\s*\S+", r"\d{3}"]}

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        return self._matcher.find(texts)


class Keywords(OutputMatcher):
    """Acts on listed words in an answer (whole words in Latin scripts, anywhere in Chinese)."""

    name = "keywords"
    default_action = "block"

    class Config(PluginConfig):
        words: list[str] = Field(
            ...,
            min_length=1,
            description=WORDS_HELP,
        )
        label: str = Field("", description="Label of every match; empty: the matched word.")

        @field_validator("words")
        @classmethod
        def _words(cls, words: list[str]) -> list[str]:
            return clean_words(words)

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._matcher = TextMatcher(self.config.words, label=self.config.label)

    @classmethod
    def contract_config(cls) -> dict:
        return {"words": ["confidential", "机密"]}

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        return self._matcher.find(texts)
