"""Text normalization (NFKC, case, whitespace, punctuation), vectorized with pyarrow.compute.

``normalize_strings`` is the one normalization routine; the dedup cleaners build their keys with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import InvalidArgument

# Code point ranges where every string is already NFKC: no character in them has a
# decomposition, is a combining mark, or composes with another one of them (a unit test
# re-derives this from unicodedata). Rows made only of these skip utf8_normalize, which costs
# about 1 us per row otherwise.
NFKC_STABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x007F),  # ASCII
    (0x00C0, 0x00FF),  # Latin-1 letters
    (0x2013, 0x2014),  # en and em dash
    (0x2018, 0x2019),  # single curly quotes
    (0x201C, 0x201D),  # double curly quotes
    (0x3001, 0x3002),  # 、。
    (0x3008, 0x3011),  # CJK brackets 〈〉《》「」『』【】
    (0x3041, 0x3096),  # hiragana
    (0x30A1, 0x30FA),  # katakana
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
)
_NEEDS_NFKC = "[^" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in NFKC_STABLE_RANGES) + "]"

# Unicode White_Space. RE2's \s is ASCII only (and lacks \v), so the set is spelled out.
_SPACE_OTHER_THAN_U20 = (
    r"\t\n\v\f\r\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
)
# Only runs that change when collapsed to one space: two or more whitespace characters, or one
# that is not U+0020. Matching single spaces as well would cost four times as much.
_COLLAPSIBLE = f"[ {_SPACE_OTHER_THAN_U20}]{{2,}}|[{_SPACE_OTHER_THAN_U20}]"
_PUNCTUATION = r"[\p{P}\p{S}]+"
_PIECE_ROWS = 1 << 17


def normalize_strings(
    values: pa.Array | pa.ChunkedArray,
    *,
    lowercase: bool = True,
    remove_punctuation: bool = False,
) -> pa.ChunkedArray:
    """NFKC, then optionally lowercase and drop punctuation/symbols, then collapse and trim spaces.

    Nulls stay null and the string type (string or large_string) is kept. Pieces of the column
    run on a thread pool: pyarrow.compute releases the GIL.
    """

    def normalize(piece: pa.Array) -> pa.Array:
        needs_nfkc = pc.match_substring_regex(piece, _NEEDS_NFKC)
        if pc.any(needs_nfkc).as_py():
            piece = pc.replace_with_mask(
                piece, needs_nfkc, pc.utf8_normalize(pc.filter(piece, needs_nfkc), "NFKC")
            )
        if lowercase:
            piece = pc.utf8_lower(piece)
        if remove_punctuation:
            piece = pc.replace_substring_regex(piece, _PUNCTUATION, "")
        piece = pc.replace_substring_regex(piece, _COLLAPSIBLE, " ")
        return pc.utf8_trim_whitespace(piece)

    return map_pieces(normalize, values)


def map_pieces(
    fn: Callable[[pa.Array], pa.Array], values: pa.Array | pa.ChunkedArray
) -> pa.ChunkedArray:
    """``fn`` over zero-copy slices of ``values`` in threads, reassembled in order."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    pieces = [
        chunk.slice(start, _PIECE_ROWS)
        for chunk in chunks
        for start in range(0, len(chunk), _PIECE_ROWS)
    ]
    if len(pieces) <= 1:
        return pa.chunked_array([fn(p) for p in pieces], type=values.type)
    with ThreadPoolExecutor(max_workers=min(len(pieces), os.cpu_count() or 1)) as pool:
        return pa.chunked_array(list(pool.map(fn, pieces)), type=values.type)


def string_column(table: pa.Table, name: str, field_path: str) -> pa.ChunkedArray:
    """Column ``name`` of ``table``, or InvalidArgument naming ``field_path`` when it is absent
    or does not hold text."""
    if name not in table.column_names:
        raise InvalidArgument.for_field(
            field_path,
            f"column {name!r} not in dataset: columns are {', '.join(table.column_names)}",
        )
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InvalidArgument.for_field(
            field_path, f"column {name!r} holds {column.type}, not text"
        )
    return column


def changed_examples(
    before: pa.ChunkedArray, after: pa.ChunkedArray, reason: str, limit: int
) -> tuple[int, list[tuple[str, str]]]:
    """How many rows differ between ``before`` and ``after``, and a few of them as examples."""
    changed = pc.fill_null(pc.not_equal(before, after), False)
    count = pc.sum(changed).as_py() or 0
    rows = pc.filter(before, changed).slice(0, limit).to_pylist() if count else []
    return count, [(text, reason) for text in rows]


def texts_at(table: pa.Table, column: str, rows: Sequence[int]) -> list[str]:
    """``column`` at ``rows`` as strings for examples ("" for null, or without that column)."""
    if column not in table.column_names:
        return [""] * len(rows)
    values = table.column(column).take(pa.array(rows, type=pa.int64())).to_pylist()
    return ["" if value is None else str(value) for value in values]


class NormalizeText(Cleaner):
    """Unicode NFKC, lowercase, collapsed whitespace and optional punctuation removal."""

    name = "normalize_text"

    class Config(PluginConfig):
        column: str | None = Field(
            None, description="Column to normalize; default: the dataset's text column."
        )
        lowercase: bool = Field(True, description="Lowercase after NFKC.")
        punctuation: Literal["keep", "remove"] = Field(
            "keep",
            description='"remove" deletes Unicode punctuation and symbols (\\p{P}, \\p{S}).',
        )

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        name = self.config.column or ctx.text_column
        before = string_column(table, name, "config.column")
        after = normalize_strings(
            before,
            lowercase=self.config.lowercase,
            remove_punctuation=self.config.punctuation == "remove",
        )
        changed, examples = changed_examples(before, after, "normalized", self.MAX_EXAMPLES)
        index = table.column_names.index(name)
        out = table.set_column(index, table.schema.field(index), after)
        return CleanResult(out, examples, {"rows_changed": changed})
