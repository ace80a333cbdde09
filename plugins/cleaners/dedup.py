"""Duplicate removal: exact (on normalized keys, vectorized) and near (MinHash LSH over shingles).

Both keep the first row of each group, so the result does not depend on anything but row order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import InvalidArgument
from forgeline.plugins.cleaners.normalize import normalize_strings, string_column, texts_at

if TYPE_CHECKING:
    from datasketch import MinHash


class ExactDedup(Cleaner):
    """Drops rows whose normalized text (or key columns) repeats an earlier row."""

    name = "dedup_exact"

    class Config(PluginConfig):
        columns: list[str] | None = Field(
            None,
            min_length=1,
            description="Columns that together form the key; default: the text column. Text is "
            "compared after NFKC, lowercasing and whitespace collapse; nulls equal each other.",
        )

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        names = self.config.columns or [ctx.text_column]
        codes = None
        for i, name in enumerate(names):
            field_path = f"config.columns[{i}]" if self.config.columns else "config.columns"
            column_codes = _first_seen_codes(_key_column(table, name, field_path))
            codes = column_codes if codes is None else _combine(codes, column_codes)
        first = _first_occurrences(codes)
        # codes count up in order of first appearance: code k first appears at the k-th kept row
        first_row_of_code = np.flatnonzero(first)
        dropped = np.flatnonzero(~first)
        shown = dropped[: self.MAX_EXAMPLES]
        examples = [
            (text, f"duplicate of row {first_row_of_code[codes[row]]}")
            for text, row in zip(texts_at(table, names[0], shown), shown, strict=True)
        ]
        details = {"duplicates": int(len(dropped)), "key": list(names)}
        return CleanResult(table.filter(pa.array(first)), examples, details)


class MinHashConfig(PluginConfig):
    """The near-match settings every MinHash cleaner shares (dedup_near, dedup_against)."""

    threshold: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="Estimated Jaccard similarity of the shingle sets at or above which a "
        "row is a near-duplicate of an earlier one.",
    )
    num_perm: int = Field(
        128, ge=16, le=1024, description="MinHash permutations: more is more precise, slower."
    )
    shingle_size: int = Field(
        5,
        ge=1,
        le=64,
        description="Characters per shingle (characters, not words, so Chinese works too).",
    )

    @model_validator(mode="after")
    def _bands_exist(self) -> Self:
        from datasketch import MinHashLSH

        try:
            MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        except ValueError as exc:  # too few permutations to split into two or more bands
            raise ValueError(
                f"threshold {self.threshold} needs more than num_perm={self.num_perm} "
                f"permutations ({exc}); lower the threshold or raise num_perm"
            ) from None
        return self


class MinHashIndex:
    """Rows' MinHash signatures in an LSH index, answering "which indexed row is closest"."""

    def __init__(self, config: MinHashConfig) -> None:
        from datasketch import MinHashLSH

        self.config = config
        self._lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        self._kept: dict[int, MinHash] = {}

    def signatures(self, texts: Iterable[str | None]) -> Iterator[MinHash]:
        """One signature per text (normalized by the caller), lazily and deterministically."""
        from datasketch import MinHash

        # crc32 is a fast deterministic input hash; datasketch mixes it before permuting.
        return MinHash.generator(
            (_shingles(text, self.config.shingle_size) for text in texts),
            num_perm=self.config.num_perm,
            hashfunc=zlib.crc32,
        )

    def insert(self, row: int, signature: MinHash) -> None:
        self._lsh.insert(row, signature)
        self._kept[row] = signature

    def closest(self, signature: MinHash) -> tuple[int | None, float]:
        """The most similar indexed row at or above the threshold (the earliest on ties)."""
        candidates = self._lsh.query(signature)
        return _closest(signature, candidates, self._kept, self.config.threshold)


class NearDedup(Cleaner):
    """Drops rows whose text nearly repeats an earlier row (MinHash LSH on character shingles)."""

    name = "dedup_near"

    class Config(MinHashConfig):
        pass

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        original = string_column(table, ctx.text_column, "text_column")
        texts = normalize_strings(original).to_pylist()
        threshold = self.config.threshold
        index = MinHashIndex(self.config)
        keep = np.ones(len(texts), dtype=bool)
        examples: list[tuple[str, str]] = []
        signatures = index.signatures(texts)
        for row, (text, signature) in enumerate(zip(texts, signatures, strict=True)):
            if row % 2048 == 0:
                ctx.check_cancelled()
            if text is None:
                continue  # nothing to compare; length_filter decides about null text
            match, similarity = index.closest(signature)
            if match is None:
                index.insert(row, signature)
                continue
            keep[row] = False
            if len(examples) < self.MAX_EXAMPLES:
                reason = f"near-duplicate of row {match} (jaccard≈{similarity:.2f})"
                examples.append((original[row].as_py(), reason))
        details = {"near_duplicates": int((~keep).sum()), "threshold": threshold}
        return CleanResult(table.filter(pa.array(keep)), examples, details)


def _key_column(table: pa.Table, name: str, field_path: str) -> pa.ChunkedArray:
    """A key column, normalized when it holds text."""
    if name not in table.column_names:
        raise InvalidArgument.for_field(
            field_path,
            f"column {name!r} not in dataset: columns are {', '.join(table.column_names)}",
        )
    column = table.column(name)
    if pa.types.is_dictionary(column.type):  # its codes are not in first-appearance order
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return normalize_strings(column)
    if pa.types.is_nested(column.type):
        raise InvalidArgument.for_field(
            field_path, f"column {name!r} holds {column.type}; only flat columns can be a key"
        )
    return column


def _first_seen_codes(column: pa.ChunkedArray) -> np.ndarray:
    """One integer per row, equal for equal values, numbered in order of first appearance."""
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    # a chunked dictionary_encode shares one growing dictionary across chunks
    parts = [chunk.indices.to_numpy() for chunk in encoded.chunks]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _combine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Codes of the pair (left, right), renumbered in order of first appearance."""
    # both are < number of rows, so the product fits int64 for up to 3e9 rows
    pairs = left * (int(right.max(initial=0)) + 1) + right
    return _first_seen_codes(pa.chunked_array([pairs], type=pa.int64()))


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """True where a code is seen for the first time (codes numbered in first-appearance order)."""
    first = np.ones(len(codes), dtype=bool)
    if len(codes) > 1:
        first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return first


def _shingles(text: str | None, size: int) -> list[bytes]:
    if not text:
        return []
    encoded = [text[i : i + size] for i in range(max(len(text) - size + 1, 1))]
    return [s.encode() for s in set(encoded)]


def _closest(
    signature: MinHash, candidates: list[int], kept: dict[int, MinHash], threshold: float
) -> tuple[int | None, float]:
    """The most similar earlier row at or above ``threshold`` (the earliest on ties), or None."""
    best, best_similarity = None, 0.0
    for row in sorted(candidates):
        similarity = signature.jaccard(kept[row])
        if similarity >= threshold and similarity > best_similarity:
            best, best_similarity = row, similarity
    return best, best_similarity
