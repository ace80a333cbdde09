"""The long_inputs contract: a LongInputStrategy is how a model copes with a document longer
than its window (truncate it, summarize it in chunks, extract its salient sentences)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgeline.contracts.base import Plugin
from forgeline.errors import InvalidArgument

# How many tokens a text is, for the model's own tokenizer (e.g. ``lambda t: len(tok(t,
# add_special_tokens=False).input_ids)``): strategies never assume a tokenizer.
TokenCounter = Callable[[str], int]
# Generates one output per input text, in order (the caller's prompt, decoding and batching).
GenerateBatch = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class ShortenedInput:
    """The one input the model reads instead of the document, and what of it was kept.

    ``count_tokens(text) <= budget`` always. ``kept_tokens`` is ``count_tokens(text)``,
    ``total_tokens`` the document's; ``details`` says which parts were kept and which were left
    out (characters, sentences), so nothing is dropped without a trace.
    """

    text: str
    kept_tokens: int
    total_tokens: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LongGeneration:
    """The output generated for a document, with the account of how: ``calls`` to
    generate_batch, ``inputs`` generated for in all, and the strategy's ``details`` (what each
    input kept, the rounds of a chunked summary)."""

    text: str
    calls: int
    inputs: int
    details: dict[str, Any] = field(default_factory=dict)


def token_counter(tokenizer: Any) -> TokenCounter:
    """The TokenCounter of a Hugging Face tokenizer: the text's own tokens, without the special
    tokens the tokenizer adds around a whole input (the caller leaves room for those)."""

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count_tokens


def check_budget(budget: int) -> None:
    """Refuses a budget no text fits in."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InvalidArgument.for_field(
            "budget", f"must be a whole number of tokens >= 1, got {budget!r}"
        )


def generate_checked(generate_batch: GenerateBatch, texts: list[str]) -> list[str]:
    """``generate_batch(texts)``, refusing an answer that is not one text per input (the
    caller's bug, which would otherwise pair outputs with the wrong documents)."""
    outputs = list(generate_batch(texts))
    if len(outputs) != len(texts) or not all(isinstance(o, str) for o in outputs):
        raise ValueError(
            f"generate_batch returned {len(outputs)} outputs for {len(texts)} inputs; "
            "it must return one text per input"
        )
    return outputs


class LongInputStrategy(Plugin, ABC):
    """How a model copes with a document longer than its window: the input it trains and
    generates on, and how it generates for the whole document."""

    kind = "long_inputs"

    @property
    def single_pass(self) -> bool:
        """Whether the strategy reads a document as the one input ``shorten`` gives (it keeps
        the default ``generate``): what a training example, one input per row, can be. Those
        that override ``generate`` (chunk) read it in several passes."""
        return type(self).generate is LongInputStrategy.generate

    @abstractmethod
    def shorten(self, text: str, budget: int, count_tokens: TokenCounter) -> ShortenedInput:
        """The single input that stands for ``text`` within ``budget`` tokens: what training
        examples and single-pass generation read. A text that fits is returned whole."""

    def generate(
        self,
        text: str,
        budget: int,
        count_tokens: TokenCounter,
        generate_batch: GenerateBatch,
    ) -> LongGeneration:
        """The output for the whole of ``text``. The default generates once, from
        ``shorten()``; strategies that read the document in several passes override it."""
        shortened = self.shorten(text, budget, count_tokens)
        (output,) = generate_checked(generate_batch, [shortened.text])
        return LongGeneration(
            output,
            calls=1,
            inputs=1,
            details={
                "kept_tokens": shortened.kept_tokens,
                "total_tokens": shortened.total_tokens,
                **shortened.details,
            },
        )
