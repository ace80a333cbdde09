"""Signs that a file was read into the wrong shape: a label left inside the text, rows merged
into one giant field. A parse that looks wrong is still kept (the data may really be like that),
but the user is told, in the ingest response and in the dataset's profile.

In the kernel because loaders use ``looks_like_labels`` to recognise a format and the data
service uses ``table_warnings`` to judge what a loader produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from forgeline.errors import excerpt

if TYPE_CHECKING:
    import pyarrow as pa

# A label is short, and a column of them repeats a few values.
LABEL_MAX_CHARS = 32
LABEL_MAX_DISTINCT = 50
# Separators a label may be glued to the text with, named for the messages.
SEPARATORS = {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a '|'"}
# Share of texts that must carry the separator and a label-like field before it is flagged.
LABEL_IN_TEXT_SHARE = 0.95
# One field at least this many times the median length, and at least this long, is suspect.
LONG_FIELD_RATIO = 30
LONG_FIELD_MIN_CHARS = 1000
# Fewer values than this make a median meaningless.
MIN_ROWS_FOR_LENGTHS = 20


@dataclass(frozen=True)
class DataWarning:
    """Something about a dataset that looks wrong but is not an error: a stable UPPER_SNAKE
    ``code`` a client or a gate can test, and a sentence saying what and how to fix it."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DataWarning:
        return cls(code=str(value["code"]), message=str(value["message"]))


def looks_like_labels(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a column of strings reads as class labels: every value present, short and
    without inner spaces, and few distinct values for the number of rows (at most a fifth of
    them, at least 2 allowed, at most LABEL_MAX_DISTINCT)."""
    import pyarrow.compute as pc

    n = len(values)
    if n == 0 or values.null_count:
        return False
    trimmed = pc.utf8_trim_whitespace(values)
    lengths = pc.utf8_length(trimmed)
    if pc.min(lengths).as_py() == 0 or pc.max(lengths).as_py() > LABEL_MAX_CHARS:
        return False
    if pc.any(pc.match_substring(trimmed, " ")).as_py():
        return False
    distinct = pc.count_distinct(trimmed).as_py()
    return distinct <= max(2, min(LABEL_MAX_DISTINCT, n // 5))


def table_warnings(table: pa.Table, text_column: str, label_column: str = "") -> list[DataWarning]:
    """What looks wrong in a freshly read table: a label-like field still glued to the text,
    and any text column holding one field dozens of times longer than the others."""
    import pyarrow as pa

    warnings: list[DataWarning] = []
    if text_column and text_column in table.column_names:
        warning = _label_in_text(table.column(text_column), text_column)
        if warning is not None:
            warnings.append(warning)
    for field in table.schema:
        if field.name != label_column and pa.types.is_string(field.type):
            warning = _long_field(table.column(field.name), field.name)
            if warning is not None:
                warnings.append(warning)
    return warnings


def _label_in_text(texts: pa.ChunkedArray, column: str) -> DataWarning | None:
    """LABEL_IN_TEXT when nearly every text ends (or starts) with a separator and a label."""
    import pyarrow.compute as pc

    present = texts.drop_null()
    if len(present) < 2:
        return None
    for separator, said in SEPARATORS.items():
        carrying = pc.filter(present, pc.match_substring(present, separator))
        if len(carrying) < LABEL_IN_TEXT_SHARE * len(present):
            continue
        for end, reverse in (("ends", True), ("starts", False)):
            parts = pc.split_pattern(carrying, separator, max_splits=1, reverse=reverse)
            field = pc.list_element(parts, 1 if reverse else 0)
            if not looks_like_labels(field):
                continue
            values = sorted(str(v) for v in pc.unique(pc.utf8_trim_whitespace(field)).to_pylist())
            shown = ", ".join(values[:5]) + (", ..." if len(values) > 5 else "")
            fix = (
                f"read the file with loader txt and delimiter {separator!r}"
                if reverse
                else f"read the file with the csv loader (delimiter {separator!r}, header: "
                "false, quoting: false) and name columns.text and columns.label"
            )
            return DataWarning(
                "LABEL_IN_TEXT",
                f"column {excerpt(column, 40)} {end} with {said} and a label-like field in "
                f"{len(carrying):,} of {len(texts):,} rows (values {shown}): the label is still "
                f"inside the text; {fix}",
            )
    return None


def _long_field(values: pa.ChunkedArray, column: str) -> DataWarning | None:
    """LONG_FIELD when one value is dozens of times the median length (merged rows)."""
    import numpy as np
    import pyarrow.compute as pc

    lengths = pc.utf8_length(values.drop_null()).to_numpy()
    if len(lengths) < MIN_ROWS_FOR_LENGTHS:
        return None
    median = float(np.median(lengths))
    longest = int(lengths.max())
    if longest < LONG_FIELD_MIN_CHARS or longest < LONG_FIELD_RATIO * max(median, 1.0):
        return None
    row = int(pc.index(pc.utf8_length(values), longest).as_py())
    ratio = longest / max(median, 1.0)
    return DataWarning(
        "LONG_FIELD",
        f"column {excerpt(column, 40)}: row {row} is {longest:,} characters, {ratio:,.0f} "
        f"times the median ({median:,.0f}): rows may have been merged into it (a stray quote "
        "opens a field that runs on over the next lines; set the loader's quoting to false if "
        "quotes in this file are plain text)",
    )
