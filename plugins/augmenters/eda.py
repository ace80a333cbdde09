"""EDA text augmentation (Wei & Zou, 2019): synonym replacement, random swap, insertion, deletion.

Words are whitespace tokens, or jieba words for text with CJK characters (joined back without
spaces). The same table and seed always give the same new rows.
"""

from __future__ import annotations

import json
import random
import re
from abc import abstractmethod
from importlib import resources
from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field

from forgeline.contracts.augmenters import AugmentContext, Augmenter
from forgeline.contracts.base import PluginConfig
from forgeline.errors import InvalidArgument

if TYPE_CHECKING:
    from jieba import Tokenizer

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
# A whitespace token is punctuation around a core word: "(Great!" -> "(", "Great", "!".
_AFFIXES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)

Synonyms = dict[str, list[str]]


class EdaConfig(PluginConfig):
    alpha: float = Field(
        0.1, gt=0.0, le=1.0, description="Share of a row's words an edit touches (at least one)."
    )
    num_aug: int = Field(1, ge=1, le=64, description="New rows made from each input row.")
    max_rows: int | None = Field(
        None,
        ge=1,
        description="Most new rows in all; input rows are then visited in a seeded random order.",
    )


class SynonymConfig(EdaConfig):
    synonyms: Synonyms = Field(
        default_factory=dict,
        description="Extra synonyms, word -> replacements, merged over the shipped table "
        "(synonyms.json); an entry here replaces the shipped one for that word.",
    )


class _Eda(Augmenter):
    """The EDA loop shared by the four operations: tokenize, edit, keep rows that changed."""

    Config = EdaConfig

    def augment(self, table: pa.Table, ctx: AugmentContext) -> pa.Table:
        column = _text_column(table, ctx.text_column)
        rng = random.Random(f"{self.name}:{ctx.seed}")  # str seeds are hashed stably (sha512)
        synonyms = self._synonyms()
        texts = column.to_pylist()
        order = list(range(len(texts)))
        limit = self.config.max_rows
        if limit is not None:
            rng.shuffle(order)
        tokenizer = None
        made: list[tuple[int, str]] = []
        for row in order:
            text = texts[row]
            if not text:
                continue
            cjk = bool(_CJK.search(text))
            if cjk and tokenizer is None:
                tokenizer = _tokenizer(synonyms)
            tokens = tokenizer.lcut(text) if cjk else text.split()
            words = [i for i, token in enumerate(tokens) if any(c.isalnum() for c in token)]
            for _ in range(self.config.num_aug):
                edited = self._edit(list(tokens), words, rng, synonyms)
                if edited != tokens:
                    made.append((row, ("" if cjk else " ").join(edited)))
            if limit is not None and len(made) >= limit:
                made = made[:limit]
                break
        made.sort(key=lambda item: item[0])  # stable: a row's variants keep their order
        index = table.column_names.index(ctx.text_column)
        new_rows = table.take(pa.array([row for row, _ in made], type=pa.int64()))
        new_text = pa.array([text for _, text in made], type=column.type)
        return new_rows.set_column(index, table.schema.field(index), new_text)

    def _synonyms(self) -> Synonyms:
        return {}

    @abstractmethod
    def _edit(
        self, tokens: list[str], words: list[int], rng: random.Random, synonyms: Synonyms
    ) -> list[str]:
        """``tokens`` (a copy, free to change) after the edit; ``words`` index its real words."""

    def _count(self, words: list[int]) -> int:
        return max(1, int(self.config.alpha * len(words)))


class SynonymReplace(_Eda):
    """EDA synonym replacement: swaps alpha of a row's words for synonyms from a table."""

    name = "synonym_replace"
    Config = SynonymConfig

    def _synonyms(self) -> Synonyms:
        return _synonym_table(self.config.synonyms)

    def _edit(
        self, tokens: list[str], words: list[int], rng: random.Random, synonyms: Synonyms
    ) -> list[str]:
        candidates = [i for i in words if _synonyms_of(tokens[i], synonyms)]
        rng.shuffle(candidates)
        for i in candidates[: self._count(words)]:
            tokens[i] = _replace(tokens[i], rng.choice(_synonyms_of(tokens[i], synonyms)))
        return tokens


class RandomInsertion(_Eda):
    """EDA random insertion: inserts synonyms of random words of the row at random places."""

    name = "random_insertion"
    Config = SynonymConfig

    def _synonyms(self) -> Synonyms:
        return _synonym_table(self.config.synonyms)

    def _edit(
        self, tokens: list[str], words: list[int], rng: random.Random, synonyms: Synonyms
    ) -> list[str]:
        choices = [found for found in (_synonyms_of(tokens[i], synonyms) for i in words) if found]
        if not choices:
            return tokens
        for _ in range(self._count(words)):
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(rng.choice(choices)))
        return tokens


class RandomSwap(_Eda):
    """EDA random swap: exchanges the places of two random words, alpha of the row's words times."""

    name = "random_swap"

    def _edit(
        self, tokens: list[str], words: list[int], rng: random.Random, synonyms: Synonyms
    ) -> list[str]:
        if len(words) < 2:
            return tokens
        for _ in range(self._count(words)):
            i, j = rng.sample(words, 2)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        return tokens


class RandomDeletion(_Eda):
    """EDA random deletion: drops each word with probability alpha, always leaving one."""

    name = "random_deletion"

    def _edit(
        self, tokens: list[str], words: list[int], rng: random.Random, synonyms: Synonyms
    ) -> list[str]:
        if len(words) < 2:
            return tokens
        doomed = {i for i in words if rng.random() < self.config.alpha}
        if len(doomed) == len(words):
            doomed.discard(rng.choice(words))
        return [token for i, token in enumerate(tokens) if i not in doomed]


def _text_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidArgument.for_field(
            "text_column",
            f"column {name!r} not in dataset: columns are {', '.join(table.column_names)}",
        )
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InvalidArgument.for_field("text_column", f"column {name!r} holds {column.type}")
    return column


def _synonym_table(extra: Synonyms) -> Synonyms:
    """The shipped synonyms.json with ``extra`` merged over it; keys lowercased."""
    shipped = resources.files(__package__).joinpath("synonyms.json").read_text(encoding="utf-8")
    merged = {**json.loads(shipped), **extra}
    return {word.lower(): [s for s in alternatives if s] for word, alternatives in merged.items()}


def _synonyms_of(token: str, synonyms: Synonyms) -> list[str]:
    core = _AFFIXES.match(token).group(2).lower()
    return [s for s in synonyms.get(core, ()) if s.lower() != core]


def _replace(token: str, synonym: str) -> str:
    """``synonym`` in the place of ``token``'s word, keeping its punctuation and capital."""
    before, core, after = _AFFIXES.match(token).groups()
    if core[:1].isupper():
        synonym = synonym[:1].upper() + synonym[1:]
    return before + synonym + after


def _tokenizer(synonyms: Synonyms) -> Tokenizer:
    """A private jieba tokenizer that keeps every CJK synonym whole."""
    import jieba

    tokenizer = jieba.Tokenizer()
    for word in synonyms:
        if _CJK.search(word):
            tokenizer.add_word(word)
    return tokenizer
