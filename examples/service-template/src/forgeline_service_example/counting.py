"""Counting words: the service's domain, which knows nothing of gRPC (the servicer translates)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import pyarrow as pa
from forgeline.contracts.cleaners import CleanContext, Cleaner

WORD = re.compile(r"\w+(?:['’-]\w+)*")
# How often a long count reports progress (and so checks for cancellation).
PROGRESS_EVERY = 1000


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased; punctuation splits words, apostrophes and hyphens
    inside a word do not ("don't", "state-of-the-art")."""
    return [w.lower() for w in WORD.findall(text)]


def clean(texts: Sequence[str], cleaners: Sequence[Cleaner], context: CleanContext) -> list[str]:
    """The texts after each cleaner ran over them in order, as one Arrow table with a ``text``
    column (what every cleaner works on)."""
    table = pa.table({"text": pa.array(list(texts), pa.string())})
    for cleaner in cleaners:
        table = cleaner.clean(table, context).table
    return [t or "" for t in table.column("text").to_pylist()]


def count_words(
    texts: Sequence[str], cleaners: Sequence[Cleaner], context: CleanContext
) -> tuple[list[str], list[int]]:
    """The cleaned texts and the number of words in each."""
    cleaned = clean(texts, cleaners, context)
    return cleaned, [len(words(t)) for t in cleaned]


def vocabulary(
    texts: Sequence[str], top_k: int, progress: Callable[[float, str], None]
) -> tuple[list[tuple[str, int]], int]:
    """The ``top_k`` most frequent words (most frequent first, ties alphabetically) and the
    number of distinct words. ``progress`` is told how far it got now and then."""
    counts: Counter[str] = Counter()
    for i, text in enumerate(texts, 1):
        counts.update(words(text))
        if i % PROGRESS_EVERY == 0:
            progress(i / len(texts), f"{i} of {len(texts)} texts counted")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:top_k], len(counts)
