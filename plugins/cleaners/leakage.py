"""Leakage between datasets that arrive already split: the rows of this dataset whose text is
found in another one (a test set's sentences in the training set), exactly after normalization
or nearly (MinHash LSH, the machinery of dedup_near). A model scored on rows it trained on looks
better than it is; a leaked row that carries the other label there teaches it both answers.

The other dataset is named in the config and handed over by the data service
(``Cleaner.references``), so the numbers it reports (``leaked_rows``, ``leaked_fraction``,
``conflicting_labels``) can be gated in a pipeline.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult, ReferencedDataset
from forgeline.errors import FailedPrecondition, excerpt
from forgeline.plugins.cleaners.dedup import MinHashConfig, MinHashIndex
from forgeline.plugins.cleaners.normalize import normalize_strings, string_column


class DedupAgainst(Cleaner):
    """Drops (or reports) rows whose text is found, exactly or nearly, in another dataset."""

    name = "dedup_against"

    class Config(MinHashConfig):
        against: str = Field(
            ...,
            min_length=1,
            description="The other dataset: an id, a name (its latest version) or name@version; "
            "e.g. the training set when cleaning the test set.",
        )
        action: Literal["drop", "report"] = Field(
            "drop",
            description='"drop" the rows found in the other dataset, or "report" them and keep '
            "every row.",
        )
        near: bool = Field(
            True,
            description="Also find near matches (MinHash LSH); false: exact matches only. Texts "
            "are compared after NFKC, lowercasing and whitespace collapse either way.",
        )
        threshold: float = Field(
            0.9,
            gt=0.0,
            le=1.0,
            description="Estimated Jaccard similarity of the shingle sets at or above which a "
            "row nearly matches a row of the other dataset.",
        )

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        return {"against": "train"}

    def references(self) -> dict[str, str]:
        return {"against": self.config.against}

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        other = ctx.datasets.get(self.config.against)
        if other is None:
            raise FailedPrecondition(
                f"config.against: dataset {excerpt(self.config.against)} was not handed over; "
                "run this cleaner through the data service, which reads it",
                reason="DATASET_NOT_PROVIDED",
            )
        texts = string_column(table, ctx.text_column, "text_column")
        other_texts = string_column(other.table, other.text_column or "text", "config.against")
        keys = normalize_strings(texts)
        other_keys = normalize_strings(other_texts).combine_chunks().cast(keys.type)
        # index_in names the first row of the other dataset holding the same key
        matched = pc.index_in(keys, value_set=other_keys, skip_nulls=True)
        match_row = pc.fill_null(matched, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        exact = match_row >= 0
        similarity = exact.astype(np.float64)
        if self.config.near:
            self._near_matches(keys, other_keys, match_row, similarity, ctx)
        leaked = match_row >= 0
        conflicting = self._conflicts(table, ctx.label_column, other, match_row)
        rows = table.num_rows
        drop = self.config.action == "drop"
        details = {
            "against": other.id,
            "leaked_rows": int(leaked.sum()),
            "leaked_fraction": float(leaked.sum()) / rows if rows else 0.0,
            "exact_matches": int(exact.sum()),
            "near_matches": int((leaked & ~exact).sum()),
            "conflicting_labels": int(conflicting.sum()),
            "rows_dropped": int(leaked.sum()) if drop else 0,
        }
        examples = self._examples(
            table, texts, other, match_row, similarity, conflicting, ctx.label_column
        )
        out = table.filter(pa.array(~leaked)) if drop else table
        return CleanResult(out, examples, details)

    def _near_matches(
        self,
        keys: pa.ChunkedArray,
        other_keys: pa.Array,
        match_row: np.ndarray,
        similarity: np.ndarray,
        ctx: CleanContext,
    ) -> None:
        """Fills ``match_row``/``similarity`` for rows without an exact match that nearly
        match a row of the other dataset."""
        unmatched = np.flatnonzero(match_row < 0)
        if len(unmatched) == 0 or len(other_keys) == 0:
            return
        index = MinHashIndex(self.config)
        other_values = other_keys.to_pylist()
        for row, signature in enumerate(index.signatures(other_values)):
            if row % 2048 == 0:
                ctx.check_cancelled()
            if other_values[row] is not None:
                index.insert(row, signature)
        values = keys.take(pa.array(unmatched)).to_pylist()
        for n, (row, text, signature) in enumerate(
            zip(unmatched, values, index.signatures(values), strict=True)
        ):
            if n % 2048 == 0:
                ctx.check_cancelled()
            if text is None:
                continue
            match, found = index.closest(signature)
            if match is not None:
                match_row[row], similarity[row] = match, found

    @staticmethod
    def _conflicts(
        table: pa.Table, label_column: str, other: ReferencedDataset, match_row: np.ndarray
    ) -> np.ndarray:
        """True for leaked rows whose label differs from the matched row's (compared as text,
        so 1 and "1" agree). All False when either dataset has no label."""
        conflicting = np.zeros(len(match_row), dtype=bool)
        leaked = np.flatnonzero(match_row >= 0)
        if (
            not len(leaked)
            or label_column not in table.column_names
            or other.label_column not in other.table.column_names
        ):
            return conflicting
        here = table.column(label_column).take(pa.array(leaked)).to_pylist()
        there = other.table.column(other.label_column).take(pa.array(match_row[leaked]))
        for i, (mine, theirs) in enumerate(zip(here, there.to_pylist(), strict=True)):
            conflicting[leaked[i]] = str(mine) != str(theirs)
        return conflicting

    def _examples(
        self,
        table: pa.Table,
        texts: pa.ChunkedArray,
        other: ReferencedDataset,
        match_row: np.ndarray,
        similarity: np.ndarray,
        conflicting: np.ndarray,
        label_column: str,
    ) -> list[tuple[str, str]]:
        """A few leaked rows, conflicting labels first (they do the most harm)."""
        leaked = np.flatnonzero(match_row >= 0)
        shown = sorted(leaked, key=lambda row: (not conflicting[row], row))[: self.MAX_EXAMPLES]
        examples = []
        for row in map(int, shown):
            there = int(match_row[row])
            where = f"row {there} of {other.id}"
            reason = (
                f"same text as {where}"
                if similarity[row] >= 1.0
                else f"near-duplicate of {where} (jaccard≈{similarity[row]:.2f})"
            )
            if conflicting[row]:
                mine = table.column(label_column)[row].as_py()
                theirs = other.table.column(other.label_column)[there].as_py()
                reason += f", labelled {theirs} there and {mine} here"
            examples.append((texts[row].as_py() or "", reason))
        return examples
