"""What input filters and output rules share: a TextCheck finds what a safety rule acts on in
texts, as TextMatch spans. Masking the spans (the "redact" action) is forgeline.redaction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from forgeline.contracts.base import Plugin

# What a rule does when its check matches: refuse the text, mask the matched spans, put a fixed
# text in its place, or let it through and report it.
RULE_ACTIONS = ("block", "redact", "replace", "flag")


@dataclass(frozen=True)
class TextMatch:
    """What a check found in one text: the characters ``text[start:end]`` (a verdict on the
    whole text, like a classifier's, spans all of it), what it is (``label``, e.g. "email" or
    "spam") and how sure the check is (1.0 for a pattern)."""

    start: int
    end: int
    label: str
    score: float = 1.0


@dataclass(frozen=True)
class SafetyContext:
    """What a check may need once, before it runs: ``model_folder(model_id, field)`` is the
    verified folder of a text-classification model artifact (safetensors or ONNX weights, never
    a pickle); a bad id raises InvalidArgument naming ``field``."""

    model_folder: Callable[[str, str], Path]


class TextCheck(Plugin, ABC):
    """Finds what a safety rule acts on in texts (the shared contract of input filters and
    output rule matchers)."""

    # The action a rule takes when the policy names none (one of RULE_ACTIONS).
    default_action: ClassVar[str] = "block"

    @classmethod
    def kind_problem(cls) -> str | None:
        if cls.default_action not in RULE_ACTIONS:
            action = cls.default_action
            return f"{cls.__name__}.default_action {action!r} is not one of {RULE_ACTIONS}"
        return None

    def prepare(self, ctx: SafetyContext) -> None:
        """Called once before the first ``find`` (a classifier loads its model here)."""

    @abstractmethod
    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        """For each text, in order, what matched (an empty list: nothing). Must be safe to call
        from several threads at once, and fast: it runs on every request."""
