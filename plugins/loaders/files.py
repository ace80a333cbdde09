"""File loaders: CSV, TSV, JSON Lines, text lines and Parquet, read exactly and strictly.

Every row is read or the load fails: a malformed row raises InvalidArgument naming the file and
its line (reason MALFORMED_ROW). pyarrow parses; when it refuses a file, a plain Python pass over
the same file finds the line to name. A parse that reads but looks wrong (quotes that joined
lines, a header that reads like data) is kept and said by ``check_parse``; a .txt of
sentence<TAB>label lines is recognised as text and label.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field, field_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.loaders import Loader, LoadSource
from forgeline.errors import InvalidArgument, ResourceExhausted, excerpt
from forgeline.parsecheck import DataWarning, looks_like_labels

_BOM = codecs.BOM_UTF8
_FIRST_BLOCK = 1 << 20
_INTEGER = r"^[+-]?[0-9]+$"
_LONGEST_NAME = 64
_LARGEST_BLOCK = 1 << 30


def _known_encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown text encoding {name!r}") from None
    return name


Encoding = Annotated[str, AfterValidator(_known_encoding)]


class DelimitedConfig(PluginConfig):
    """The options of the CSV and TSV loaders; the two differ only in their defaults."""

    delimiter: str = Field(
        ",", min_length=1, max_length=1, description="Field separator, one character."
    )
    encoding: Encoding = Field("utf-8", description="Text encoding of the file.")
    header: bool = Field(
        True,
        description="The first line names the columns; otherwise they are column_0, "
        "column_1, ... (or column_names).",
    )
    quoting: bool = Field(
        True,
        description="Fields may be enclosed in double quotes, which can hold delimiters and line "
        'breaks ("" is a quote inside one). false: quotes are plain text and every line is one '
        "row, for files with stray quotes such as sentence<TAB>label files.",
    )
    column_names: list[str] | None = Field(
        None,
        min_length=1,
        description="Names for the columns, in order, e.g. for a file without a header; with "
        "header: true they replace the header's names.",
    )
    trim_whitespace: bool = Field(
        False,
        description="Trim spaces around every field (e.g. UCI Adult, whose fields follow ', ').",
    )

    @field_validator("column_names")
    @classmethod
    def _distinct_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            if any(not name for name in names):
                raise ValueError("column names must not be empty")
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"column names repeat: {', '.join(map(repr, repeated))}")
        return names


class _DelimitedLoader(Loader):
    """Reads delimited text with the options of ``DelimitedConfig``."""

    Config = DelimitedConfig

    def load(self, source: LoadSource) -> pa.Table:
        path = _checked_path(source, self.name)
        return _read_delimited(path, source, self.config)

    def check_parse(self, source: LoadSource, table: pa.Table) -> list[DataWarning]:
        """A header that reads like data, and (when quotes join lines) fewer rows than lines."""
        warnings = []
        if self.config.header and not self.config.column_names:
            warning = _header_like_data(table.column_names)
            if warning is not None:
                warnings.append(warning)
        if self.config.quoting and source.path is not None:
            lines = _content_lines(source.inside_roots(source.path))
            if table.num_rows < lines - int(self.config.header):
                warnings.append(_rows_span_lines(table, lines))
        return warnings


class CsvLoader(_DelimitedLoader):
    """Comma-separated values with a header row; numeric columns become int64 or float64."""

    name = "csv"
    extensions = (".csv",)

    class Config(DelimitedConfig):
        pass


class TsvLoader(_DelimitedLoader):
    """Tab-separated values; quotes are text, not quoting; numeric columns become numbers."""

    name = "tsv"
    extensions = (".tsv",)

    class Config(DelimitedConfig):
        delimiter: str = Field(
            "\t", min_length=1, max_length=1, description="Field separator, one character."
        )
        header: bool = Field(
            False,
            description="The first line names the columns; otherwise they are column_0, "
            "column_1, ... (or column_names).",
        )
        quoting: bool = Field(
            False,
            description="Fields may be enclosed in double quotes, which can hold delimiters and "
            "line breaks. false (the default here): quotes are plain text, every line is a row.",
        )


class JsonlLoader(Loader):
    """JSON Lines: one JSON object per line; its keys become columns."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson")

    def load(self, source: LoadSource) -> pa.Table:
        import pyarrow.json as pjson

        path = _checked_path(source, self.name)

        def read(block_size: int) -> pa.Table:
            return pjson.read_json(path, read_options=pjson.ReadOptions(block_size=block_size))

        try:
            table = _with_growing_blocks(read, path.stat().st_size)
            table.validate(full=True)  # pyarrow.json passes invalid UTF-8 through into strings
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _malformed(path, _jsonl_problem(path) or str(exc)) from exc
        return _checked_rows(table, path, source)


class TextLinesLoader(Loader):
    """One row per non-blank line of a text file, optionally split into text and label."""

    name = "txt"
    extensions = (".txt",)

    class Config(PluginConfig):
        delimiter: str | None = Field(
            None,
            min_length=1,
            description="Split each line once, from the right, into text and label at this string "
            '("\\t" for sentence<TAB>label files); default: the whole line is the text.',
        )
        label_type: Literal["int", "str"] = Field(
            "str", description="Type of the label column when a delimiter is set."
        )
        encoding: Encoding = Field("utf-8", description="Text encoding of the file.")
        detect: bool = Field(
            True,
            description="With no delimiter: a file whose every line holds exactly one tab "
            "followed by a label-like field (sentence<TAB>label) is split there into text and "
            "label (an int label when every label is an integer). false: whole lines, always.",
        )

    def load(self, source: LoadSource) -> pa.Table:
        path = _checked_path(source, self.name)
        data = path.read_bytes()
        try:
            text = data.decode(self.config.encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise _malformed(
                path, f"line {line} is not valid {self.config.encoding.upper()}"
            ) from exc
        # split on "\n" only: str.splitlines() would also split inside a line at U+0085, U+2028...
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        rows = pa.array(lines, type=pa.string())
        crlf = pc.ends_with(rows, "\r")
        if pc.any(crlf).as_py():
            rows = pc.if_else(crlf, pc.utf8_slice_codeunits(rows, 0, -1), rows)
        filled = pc.not_equal(pc.binary_length(rows), 0)  # blank lines are not rows
        line_numbers = np.flatnonzero(filled.to_numpy(zero_copy_only=False)) + 1
        rows = rows.filter(filled)
        delimiter, label_type = self.config.delimiter, self.config.label_type
        if delimiter is None and self.config.detect:
            label_type = _tab_separated_label_type(rows)
            delimiter = "\t" if label_type else None
        if delimiter is None:
            return _checked_rows(pa.table({"text": rows}), path, source)
        table = _split_text_label(rows, line_numbers, path, delimiter, label_type)
        return _checked_rows(table, path, source)


def _tab_separated_label_type(rows: pa.Array) -> Literal["int", "str"] | None:
    """The label type when every line is text<TAB>label with a label-like last field, else None."""
    if len(rows) == 0 or not pc.all(pc.equal(pc.count_substring(rows, "\t"), 1)).as_py():
        return None
    labels = pc.utf8_trim_whitespace(pc.list_element(pc.split_pattern(rows, "\t"), 1))
    if not looks_like_labels(labels):
        return None
    return "int" if pc.all(pc.match_substring_regex(labels, _INTEGER)).as_py() else "str"


def _split_text_label(
    rows: pa.Array, line_numbers: np.ndarray, path: Path, delimiter: str, label_type: str
) -> pa.Table:
    """Each line split once, from the right, into text and label."""
    parts = pc.split_pattern(rows, delimiter, max_splits=1, reverse=True)
    unsplit = pc.less(pc.list_value_length(parts), 2)
    if pc.any(unsplit).as_py():
        line = line_numbers[pc.index(unsplit, True).as_py()]
        raise _malformed(path, f"line {line} has no {delimiter!r} between text and label")
    label = pc.utf8_trim_whitespace(pc.list_element(parts, 1))
    if label_type == "int":
        not_int = pc.invert(pc.match_substring_regex(label, _INTEGER))
        if pc.any(not_int).as_py():
            row = pc.index(not_int, True).as_py()
            raise _malformed(
                path, f"line {line_numbers[row]}: label {label[row].as_py()!r} is not an integer"
            )
        label = label.cast(pa.int64())
    return pa.table({"text": pc.list_element(parts, 0), "label": label})


class ParquetLoader(Loader):
    """Parquet files, every column as stored."""

    name = "parquet"
    extensions = (".parquet",)

    def load(self, source: LoadSource) -> pa.Table:
        import pyarrow.parquet as pq

        path = _checked_path(source, self.name)
        try:
            parquet = pq.ParquetFile(path)
            _check_row_count(parquet.metadata.num_rows, path, source)
            table = parquet.read()
            table.validate(full=True)  # e.g. strings that are not UTF-8
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidArgument(
                f"{path}: not a readable Parquet file: {exc}", reason="MALFORMED_FILE"
            ) from exc
        return _checked_rows(table, path, source)


# --- shared checks -----------------------------------------------------------------------------


def _checked_path(source: LoadSource, loader: str) -> Path:
    """The file to read (its real path, inside the data roots), after the size limit and the
    empty-file check."""
    if source.path is None:
        raise InvalidArgument.for_field("source", f"loader {loader!r} reads files, not URLs")
    path = source.inside_roots(source.path)
    size = source.file_size()
    if size == 0 or (size <= 4096 and not path.read_bytes().removeprefix(_BOM).strip()):
        raise InvalidArgument(f"{path}: the file is empty", reason="EMPTY_DATASET")
    return path


def _check_row_count(rows: int, path: Path, source: LoadSource) -> None:
    if rows > source.max_rows:
        raise ResourceExhausted(
            f"{path}: {rows} rows is over the limit of {source.max_rows} rows",
            reason="TOO_MANY_ROWS",
        )
    if rows == 0:
        raise InvalidArgument(f"{path}: no rows", reason="EMPTY_DATASET")


def _checked_rows(table: pa.Table, path: Path, source: LoadSource) -> pa.Table:
    _check_row_count(table.num_rows, path, source)
    return table


def _malformed(path: Path, problem: str) -> InvalidArgument:
    return InvalidArgument(f"{path}: {problem}", reason="MALFORMED_ROW")


def _with_growing_blocks(read: Callable[[int], pa.Table], size: int) -> pa.Table:
    """``read(block_size)``, retried with larger blocks while a row straddles two blocks."""
    block = _FIRST_BLOCK
    while True:
        try:
            return read(block)
        except pa.ArrowInvalid as exc:
            # pyarrow reports a row longer than a block only in the message text
            if "straddl" not in str(exc) or block >= min(size, _LARGEST_BLOCK):
                raise
            block = min(block * 16, _LARGEST_BLOCK)


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """The first line holding bytes that are not valid ``encoding``, streaming the file."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            pending = len(decoder.getstate()[0])  # undecoded bytes left from the last chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk.count(b"\n", 0, max(exc.start - pending, 0))
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line
    return None


# --- delimited text ----------------------------------------------------------------------------


def _read_delimited(path: Path, source: LoadSource, config: DelimitedConfig) -> pa.Table:
    """Every row of a CSV/TSV file as strings, then numeric columns as numbers.

    Types are inferred from whole columns, not from the first block as pyarrow would, so a
    column of numbers with text on line 900,000 is text rather than an error.
    """
    import pyarrow.csv as pcsv

    delimiter, quoting, header = config.delimiter, config.quoting, config.header
    encoding = config.encoding
    parse = pcsv.ParseOptions(
        delimiter=delimiter, quote_char='"' if quoting else False, newlines_in_values=quoting
    )

    def read(block_size: int) -> pa.Table:
        first = pcsv.ReadOptions(
            encoding=encoding, block_size=block_size, autogenerate_column_names=not header
        )
        with pcsv.open_csv(path, read_options=first, parse_options=parse) as reader:
            names = reader.schema.names
        if config.column_names:
            names = _named_columns(config.column_names, len(names))
        elif not header:
            names = [f"column_{i}" for i in range(len(names))]
        options = pcsv.ReadOptions(
            encoding=encoding, block_size=block_size, column_names=names, skip_rows=int(header)
        )
        convert = pcsv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False
        )
        return pcsv.read_csv(
            path, read_options=options, parse_options=parse, convert_options=convert
        )

    try:
        table = _with_growing_blocks(read, path.stat().st_size)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        problem = _delimited_problem(path, encoding, delimiter, quoting)
        raise _malformed(path, problem or str(exc)) from exc
    if table.num_rows == 0 and header:
        raise InvalidArgument(f"{path}: no rows after the header", reason="EMPTY_DATASET")
    table = _checked_rows(table, path, source)
    columns = table.columns
    if config.trim_whitespace:
        columns = [pc.utf8_trim_whitespace(column) for column in columns]
    return pa.table([_as_numbers(column) for column in columns], names=table.column_names)


def _named_columns(names: list[str], found: int) -> list[str]:
    if len(names) != found:
        raise InvalidArgument.for_field(
            "loader.config.column_names",
            f"{len(names)} names for a file of {found} columns",
        )
    return names


def _header_like_data(names: list[str]) -> DataWarning | None:
    """HEADER_LOOKS_LIKE_DATA: a column name as long as a sentence, or two that are numbers."""
    long = [name for name in names if len(name) > _LONGEST_NAME]
    numbers = [name for name in names if _is_number(name)]
    if not long and len(numbers) < 2:
        return None
    shown = excerpt(long[0], 40) if long else ", ".join(map(repr, numbers[:3]))
    return DataWarning(
        "HEADER_LOOKS_LIKE_DATA",
        f"the first line was read as column names and reads like data ({shown}); if the file "
        "has no header, set header: false (and column_names to name the columns)",
    )


def _rows_span_lines(table: pa.Table, lines: int) -> DataWarning:
    """ROWS_SPAN_LINES: quoted values joined lines; names the first row holding a line break."""
    spanning = None
    for column in table.columns:
        if pa.types.is_string(column.type):
            breaks = pc.fill_null(pc.match_substring(column, "\n"), False)
            spanning = breaks if spanning is None else pc.or_(spanning, breaks)
    count = 0 if spanning is None else pc.sum(spanning).as_py() or 0
    first = f" (the first is row {pc.index(spanning, True).as_py()})" if count else ""
    return DataWarning(
        "ROWS_SPAN_LINES",
        f"read {table.num_rows:,} rows from {lines:,} lines: {count:,} rows hold line breaks "
        f"inside quotes{first}; if quotes in this file are plain text (a stray quote joins the "
        "lines up to the next one), set quoting: false",
    )


def _content_lines(path: Path) -> int:
    """Lines holding anything but a line break, streaming the file (readers skip blank lines)."""
    count, before = 0, b"\n\n"  # the two bytes before the chunk: a file starts a fresh line
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            data = np.frombuffer(before + chunk, dtype=np.uint8)
            ends = np.flatnonzero(data[2:] == 10) + 2
            blank = (data[ends - 1] == 10) | ((data[ends - 1] == 13) & (data[ends - 2] == 10))
            count += int((~blank).sum())
            before = (before + chunk)[-2:]
    last_line_open = before[-1:] != b"\n" and before != b"\n\r"
    return count + int(last_line_open)


def _as_numbers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """int64 or float64 when every non-empty value is a number (empty ones become null)."""
    empty = pc.equal(column, "")
    first_value = pc.index(empty, False).as_py()
    if first_value < 0 or not _is_number(column[first_value].as_py()):
        return column  # all empty, or text: the usual case for text columns, decided cheaply
    values = (
        pc.if_else(empty, pa.scalar(None, pa.string()), column) if pc.any(empty).as_py() else column
    )
    for number_type in (pa.int64(), pa.float64()):
        try:
            return values.cast(number_type)
        except pa.ArrowInvalid:
            continue
    return column


def _is_number(value: str) -> bool:
    try:
        pa.scalar(value).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _delimited_problem(path: Path, encoding: str, delimiter: str, quoting: bool) -> str | None:
    """What is wrong with a CSV/TSV file pyarrow refused, naming the line, if Python finds it."""
    line = _undecodable_line(path, encoding)
    if line is not None:
        return f"line {line} is not valid {encoding.upper()}"
    python_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    with path.open(encoding=python_encoding, newline="") as fh:
        if quoting:
            reader = csv.reader(fh, delimiter=delimiter)
        else:
            reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE, quotechar=None)
        expected = None
        try:
            for fields in reader:
                if not fields:
                    continue  # blank lines are skipped, as pyarrow does
                if expected is None:
                    expected = len(fields)
                elif len(fields) != expected:
                    return f"line {reader.line_num} has {len(fields)} fields, expected {expected}"
        except csv.Error as exc:
            return f"line {reader.line_num}: {exc}"
    return None


# --- JSON lines --------------------------------------------------------------------------------


def _jsonl_problem(path: Path) -> str | None:
    """The first line pyarrow cannot take: bad UTF-8, bad JSON, not an object, a type change."""
    seen: dict[str, tuple[str, int]] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return f"line {number} is not valid UTF-8"
            except json.JSONDecodeError as exc:
                return f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})"
            if not isinstance(value, dict):
                return f"line {number} is a JSON {_json_kind(value)}, not an object"
            for key, kind in _json_kinds(value, ""):
                first = seen.setdefault(key, (kind, number))
                if first[0] != kind:
                    return (
                        f"line {number}: field {key!r} is a {kind}, but on line {first[1]} it "
                        f"is a {first[0]}"
                    )
    return None


def _json_kinds(value: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """(path, kind) of every non-null value in a JSON object, nested objects included."""
    for key, item in value.items():
        path = f"{prefix}/{key}" if prefix else key
        if item is None:
            continue
        yield path, _json_kind(item)
        if isinstance(item, dict):
            yield from _json_kinds(item, path)


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
