"""A blocklist of words and regexes, in any language, matched case- and width-insensitively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pydantic import Field, field_validator, model_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.input_filters import InputFilter, TextMatch
from forgeline.plugins.input_filters.text import (
    REGEX_HELP,
    WORDS_HELP,
    TextMatcher,
    clean_words,
    compile_patterns,
)


class Blocklist(InputFilter):
    """Finds listed words (whole words in Latin scripts, anywhere in Chinese) and regexes."""

    name = "blocklist"
    default_action = "block"

    class Config(PluginConfig):
        words: list[str] = Field(
            default_factory=list,
            description=WORDS_HELP,
        )
        regexes: list[str] = Field(
            default_factory=list,
            description="Regular expressions, matched case-insensitively against the text "
            "after NFKC and case folding (full-width letters and digits become ASCII). "
            + REGEX_HELP
            + " For whole words in any script, list them as words.",
        )
        label: str = Field(
            "",
            description='Label of every match; empty: the matched word, or "regex" for a '
            "regex match.",
        )

        @field_validator("words")
        @classmethod
        def _words(cls, words: list[str]) -> list[str]:
            return clean_words(words)

        @field_validator("regexes")
        @classmethod
        def _regexes(cls, regexes: list[str]) -> list[str]:
            compile_patterns(regexes, field="regexes")
            return regexes

        @model_validator(mode="after")
        def _something_to_find(self) -> Self:
            if not self.words and not self.regexes:
                raise ValueError("name at least one word or regex")
            return self

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._matcher = TextMatcher(self.config.words, self.config.regexes, label=self.config.label)

    @classmethod
    def contract_config(cls) -> dict:
        return {"words": ["spam", "垃圾"], "regexes": [r"buy\s+now"]}

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        return self._matcher.find(texts)
