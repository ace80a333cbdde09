"""Human review of generated text (issue 20): the legal experts' ratings that end the guide's
summarization case. No gRPC here.

Every generation-based evaluation and summarization baseline keeps all its outputs as a dataset
(``keep_outputs``: columns row, source, reference, output). ``ExportReviewSheet`` samples
documents the compared systems all answered, lays their outputs side by side in a CSV any
spreadsheet opens (blind by default: per document the summaries appear as A, B, ... in a seeded
order) and keeps the key to the letters beside the sheet, in the artifact, never in the sheet.
``IngestReviewSheet`` reads filled copies back, checks every cell against that key, and turns
the ratings into numbers per system (and, with several raters, how often they agree).

The pure functions (``build_sheet``, ``write_sheet``, ``read_ratings``, ``summarize``) hold
the rules; ``ReviewSheets`` reaches the stores and the data roots.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
import string
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.datasets import Dataset, DatasetRepository
from forgeline.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Violations,
    excerpt,
)
from forgeline.names import artifact_name, artifact_ref

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator

OUTPUT_COLUMNS = ("row", "source", "reference", "output")
DEFAULT_CRITERIA = ("faithfulness", "coverage", "fluency")
DEFAULT_DOCUMENTS = 20
DEFAULT_EXCERPT = 2000
# A spreadsheet cell holds 32,767 characters (Excel); longer text is cut with a marker.
CELL_CHARS = 32_000
MIN_RATING, MAX_RATING = 1, 5
LETTERS = string.ascii_uppercase
SHEET_FILE, KEY_FILE = "sheet.csv", "key.json"
SHEET_FORMAT = "review_sheet"
# Columns the export writes around the criteria; a criterion may not take one of their names.
RESERVED = (
    "sheet",
    "document",
    "summary",
    "system",
    "source_excerpt",
    "reference",
    "output",
    "comment",
    "rater",
)
MAX_CRITERION_CHARS = 64
MAX_CRITERIA = 20
# A filled sheet of 26 systems x thousands of documents stays far below this.
MAX_SHEET_BYTES = 64 << 20
# Problems one refusal lists (a sheet of another export would otherwise list every row).
MAX_PROBLEMS = 20
CUT = " [...]"
# A cell a spreadsheet would run as a formula (CSV injection): kept as text by a leading quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# === the outputs every evaluation keeps ========================================================


@dataclass(frozen=True)
class SystemOutputs:
    """What one system wrote for the rows it was evaluated on."""

    rows: list[int]
    sources: list[str]
    references: list[str]
    outputs: list[str]

    def table(self) -> pa.Table:
        import pyarrow as pa

        return pa.table(
            {
                "row": pa.array(self.rows, pa.int64()),
                "source": pa.array(self.sources, pa.string()),
                "reference": pa.array(self.references, pa.string()),
                "output": pa.array(self.outputs, pa.string()),
            }
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> SystemOutputs:
        columns = {name: table.column(name).to_pylist() for name in OUTPUT_COLUMNS}
        return cls(
            rows=[int(v) for v in columns["row"]],
            sources=[v or "" for v in columns["source"]],
            references=[v or "" for v in columns["reference"]],
            outputs=[v or "" for v in columns["output"]],
        )


def keep_outputs(
    datasets: DatasetRepository,
    outputs: SystemOutputs,
    *,
    system: str,
    lineage: Lineage,
    request_id: str,
) -> str:
    """Saves every output of an evaluation as a dataset named after its ``system`` (a model or
    baseline name) and returns its id; the one saved before under ``request_id`` (an operation
    run again after a restart), if any. Nothing is saved for an evaluation of no rows."""
    if not outputs.rows:
        return ""
    done = datasets.find_upload(request_id)
    if done is not None:
        return done.id
    saved = datasets.save(
        outputs.table(),
        name=f"{system[:120]}-outputs",
        text_column="source",
        label_column="reference",
        lineage=lineage,
        request_id=request_id,
    )
    return saved.id


# === the sheet =================================================================================


@dataclass(frozen=True)
class SheetSpec:
    """An ExportReviewSheet request as plain data (the servicer fills it from the message)."""

    systems: tuple[tuple[str, str], ...]  # (name, outputs_id)
    num_documents: int = 0
    seed: int = 0
    excerpt_chars: int = 0
    criteria: tuple[str, ...] = ()
    blind: bool = True
    output_name: str = ""
    output_path: str = ""


@dataclass
class ReviewKey:
    """Which system wrote each summary letter of each document: what unblinds the ratings.
    ``token`` is written on every row of the sheet, so a sheet of another export is told apart."""

    token: str
    systems: list[str]
    outputs_ids: list[str]
    criteria: list[str]
    blind: bool
    seed: int
    # document (the row of the eval dataset) -> summary letter -> system name
    documents: dict[int, dict[str, str]] = field(default_factory=dict)

    def as_json(self) -> str:
        data = asdict(self)
        data["documents"] = {str(d): letters for d, letters in self.documents.items()}
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReviewKey:
        data = json.loads(text)
        data["documents"] = {int(d): letters for d, letters in data["documents"].items()}
        return cls(**data)


def check_sheet_spec(spec: SheetSpec) -> SheetSpec:
    """The request with its defaults filled in; every field problem at once (InvalidArgument
    naming each field)."""
    problems = Violations()
    if not spec.systems:
        problems.add("systems", "name at least one system (name and outputs_id)")
    if len(spec.systems) > len(LETTERS):
        problems.add("systems", f"{len(spec.systems)} systems; a sheet compares at most 26 (A-Z)")
    seen: dict[str, int] = {}
    for i, (name, outputs_id) in enumerate(spec.systems):
        try:
            artifact_name(name, f"systems[{i}].name")
        except InvalidArgument as exc:
            problems.extend(exc.violations)
        if name in seen:
            problems.add(f"systems[{i}].name", f"{name!r} is already systems[{seen[name]}]'s name")
        seen.setdefault(name, i)
        if not outputs_id:
            problems.add(f"systems[{i}].outputs_id", "an outputs dataset is required")
        else:
            try:
                artifact_ref(outputs_id, f"systems[{i}].outputs_id")
            except InvalidArgument as exc:
                problems.extend(exc.violations)
    if spec.num_documents < 0:
        problems.add("num_documents", "must be >= 0 (0: 20)")
    if not 0 <= spec.excerpt_chars <= CELL_CHARS:
        problems.add("excerpt_chars", f"must be in [0, {CELL_CHARS}] (0: {DEFAULT_EXCERPT})")
    criteria = spec.criteria or DEFAULT_CRITERIA
    if len(criteria) > MAX_CRITERIA:
        problems.add("criteria", f"{len(criteria)} criteria; at most {MAX_CRITERIA}")
    for i, criterion in enumerate(criteria[:MAX_CRITERIA]):
        problem = _criterion_problem(criterion, criteria[:i])
        if problem:
            problems.add(f"criteria[{i}]", problem)
    if spec.output_name:
        try:
            artifact_name(spec.output_name, "output_name")
        except InvalidArgument as exc:
            problems.extend(exc.violations)
    problems.raise_if_any()
    return SheetSpec(
        systems=spec.systems,
        num_documents=spec.num_documents or DEFAULT_DOCUMENTS,
        seed=spec.seed,
        excerpt_chars=spec.excerpt_chars or DEFAULT_EXCERPT,
        criteria=tuple(criteria),
        blind=spec.blind,
        output_name=spec.output_name,
        output_path=spec.output_path,
    )


def _criterion_problem(criterion: str, before: tuple[str, ...]) -> str:
    if not criterion.strip() or criterion != criterion.strip():
        return f"{excerpt(criterion)}: a column name without leading or trailing spaces"
    if len(criterion) > MAX_CRITERION_CHARS or not criterion.isprintable():
        return f"{excerpt(criterion)}: at most {MAX_CRITERION_CHARS} printable characters"
    if any(c in criterion for c in ',;"'):
        return f"{excerpt(criterion)}: a column name without ',', ';' or '\"'"
    if criterion.lower() in RESERVED:
        return f"{criterion!r} is a column of the sheet itself ({', '.join(RESERVED)})"
    if criterion.lower() in (c.lower() for c in before):
        return f"{criterion!r} is named twice"
    return ""


def align(systems: list[tuple[str, SystemOutputs]]) -> list[int]:
    """The rows every system answered, in order; InvalidArgument naming
    ``systems[i].outputs_id`` when a system's rows or references differ from the first's (the
    sheet compares outputs for the same documents against the same references)."""
    first_name, first = systems[0]
    expected = dict(zip(first.rows, first.references, strict=True))
    for i, (name, outputs) in enumerate(systems[1:], 1):
        found = dict(zip(outputs.rows, outputs.references, strict=True))
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        if missing or extra:
            raise InvalidArgument.for_field(
                f"systems[{i}].outputs_id",
                f"{name!r} was evaluated on other rows than {first_name!r} "
                f"({len(found)} rows against {len(expected)}; rows only in {first_name!r}: "
                f"{missing[:5]}, only in {name!r}: {extra[:5]}): evaluate every system on the "
                "same eval dataset and subset",
            )
        differing = sorted(r for r in expected if expected[r] != found[r])
        if differing:
            raise InvalidArgument.for_field(
                f"systems[{i}].outputs_id",
                f"{name!r} has other references than {first_name!r} on {len(differing)} rows "
                f"(first: {differing[:5]}): evaluate every system against the same reference "
                "column",
            )
    return sorted(expected)


def sheet_columns(criteria: list[str], blind: bool) -> list[str]:
    """The sheet's header: identity, what to read, one column per criterion, the rest."""
    shown = ["sheet", "document", "summary"] + ([] if blind else ["system"])
    return shown + ["source_excerpt", "reference", "output", *criteria, "comment", "rater"]


def build_sheet(
    systems: list[tuple[str, str, SystemOutputs]],
    *,
    num_documents: int,
    seed: int,
    excerpt_chars: int,
    criteria: list[str],
    blind: bool,
) -> tuple[list[list[str]], ReviewKey]:
    """The sheet's rows (header first) and its key. ``systems``: (name, outputs_id, outputs),
    aligned (``align``). ``num_documents`` rows are drawn with ``seed`` (all when fewer);
    blind, each document's summaries are shuffled with the same seed."""
    outputs = [s[2] for s in systems]
    rows = align([(name, out) for name, _, out in systems])
    sampled = sorted(random.Random(seed).sample(rows, min(num_documents, len(rows))))
    order = random.Random(f"review-order/{seed}")
    documents: dict[int, dict[str, str]] = {}
    for document in sampled:
        names = [name for name, _, _ in systems]
        if blind:
            order.shuffle(names)
        documents[document] = dict(zip(LETTERS, names, strict=False))
    key = ReviewKey(
        token="",
        systems=[name for name, _, _ in systems],
        outputs_ids=[outputs_id for _, outputs_id, _ in systems],
        criteria=list(criteria),
        blind=blind,
        seed=seed,
        documents=documents,
    )
    key.token = hashlib.sha256(key.as_json().encode()).hexdigest()[:12]
    positions = [{row: i for i, row in enumerate(out.rows)} for out in outputs]
    index = {name: i for i, (name, _, _) in enumerate(systems)}
    table = [sheet_columns(list(criteria), blind)]
    for document, letters in documents.items():
        # One excerpt per document, the first system's source, on every one of its rows: the
        # systems' own sources differ (a baseline keeps the bare text, a model its prompt with
        # the instruction), and a difference there would tell a blind rater which system is which.
        excerpt = _cell(outputs[0].sources[positions[0][document]], excerpt_chars)
        for letter, name in letters.items():
            out = outputs[index[name]]
            at = positions[index[name]][document]
            table.append(
                [key.token, str(document), letter]
                + ([] if blind else [name])
                + [
                    excerpt,
                    _cell(out.references[at], CELL_CHARS),
                    _cell(out.outputs[at], CELL_CHARS),
                ]
                + [""] * len(criteria)
                + ["", ""]
            )
    return table, key


def _cell(text: str, limit: int) -> str:
    """``text`` as a spreadsheet shows it: at most ``limit`` characters (cut with a marker),
    no NUL, and never read as a formula."""
    text = text.replace("\x00", "")
    if len(text) > limit:
        text = text[: max(limit - len(CUT), 0)] + CUT
    return "'" + text if text.startswith(FORMULA_START) else text


def write_sheet(table: list[list[str]]) -> bytes:
    """The sheet as CSV: UTF-8 with a byte-order mark (so Excel reads it as UTF-8) and CRLF
    line ends (RFC 4180)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    return buffer.getvalue().encode("utf-8-sig")


# === the filled sheet ==========================================================================


@dataclass(frozen=True)
class Rating:
    rater: str
    document: int
    letter: str
    system: str
    criterion: str
    value: int


@dataclass
class SheetRatings:
    """What the filled copies of a sheet hold: every rating, and the blank cells skipped per
    system."""

    ratings: list[Rating] = field(default_factory=list)
    unrated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    raters: list[str] = field(default_factory=list)
    # (rater, document, letter) -> where it was rated first: (the file's field, its row)
    seen: dict[tuple[str, int, str], tuple[str, int]] = field(default_factory=dict)


def read_ratings(
    data: bytes, key: ReviewKey, field_name: str, default_rater: str, into: SheetRatings
) -> None:
    """Adds the ratings of one filled copy of the sheet (``data``, CSV as a spreadsheet saves
    it: UTF-8 with or without a BOM, comma, semicolon or tab separated) to ``into``.

    Refused (InvalidArgument naming ``field_name``, every problem up to MAX_PROBLEMS at once,
    each with its spreadsheet row, the header being row 1, and column): a missing column, a row
    of another export, a document or summary letter the key does not hold, a rating that is not
    a whole number from 1 to 5, and a summary rated twice by the same rater. Blank rating cells
    are skipped and counted; rows with no cell filled at all are ignored."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field(
            field_name,
            f"not UTF-8 text (byte {exc.start}): save the sheet as 'CSV UTF-8'",
        ) from None
    records = _records(text, field_name)
    if not records:
        raise InvalidArgument.for_field(field_name, "the file is empty: no header row")
    header = [h.strip() for h in records[0]]
    columns = {name: i for i, name in reversed(list(enumerate(header)))}
    required = ["sheet", "document", "summary", *key.criteria]
    missing = [name for name in required if name not in columns]
    if missing:
        raise InvalidArgument.for_field(
            field_name,
            f"row 1: columns {missing} are missing; this sheet's columns include {required}",
        )
    problems = _Problems(field_name)
    for number, record in enumerate(records[1:], 2):
        if problems.full:
            break

        def cell(name: str, record: list[str] = record) -> str:
            at = columns.get(name)
            return record[at].strip() if at is not None and at < len(record) else ""

        if not any(value.strip() for value in record):
            continue  # a blank line a spreadsheet left at the end
        if cell("sheet") != key.token:
            problems.add(
                number,
                "sheet",
                f"this row is from another export (sheet {excerpt(cell('sheet'), 20)}); "
                f"sheet_id's sheet is {key.token!r}",
            )
            continue
        document = _document(cell("document"))
        if document is None or document not in key.documents:
            problems.add(
                number, "document", f"{excerpt(cell('document'))} is not a document of the sheet"
            )
            continue
        letters = key.documents[document]
        letter = cell("summary").upper()
        if letter not in letters:
            problems.add(
                number,
                "summary",
                f"document {document} has no summary {excerpt(cell('summary'))} "
                f"(its summaries: {', '.join(letters)})",
            )
            continue
        system = letters[letter]
        rater = cell("rater") or default_rater
        first = into.seen.setdefault((rater, document, letter), (field_name, number))
        if first != (field_name, number):
            where = f"row {first[1]}" + (f" of {first[0]}" if first[0] != field_name else "")
            problems.add(
                number,
                "summary",
                f"document {document} summary {letter} is rated again by rater {rater!r} "
                f"(first at {where})",
            )
            continue
        if rater not in into.raters:
            into.raters.append(rater)
        for criterion in key.criteria:
            raw = cell(criterion)
            if not raw:
                into.unrated[system] += 1
                continue
            value = _rating(raw)
            if value is None:
                problems.add(
                    number,
                    criterion,
                    f"{excerpt(raw)} is not a rating: give a whole number from {MIN_RATING} to "
                    f"{MAX_RATING}, or leave the cell blank",
                )
                continue
            into.ratings.append(Rating(rater, document, letter, system, criterion, value))
    problems.raise_if_any()


def _records(text: str, field_name: str) -> list[list[str]]:
    """The CSV records of ``text``, its separator the one its header line uses most (the
    header's names hold none; csv.Sniffer guesses wrong on a single line)."""
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as exc:
        raise InvalidArgument.for_field(
            field_name, f"row {reader.line_num}: not CSV a spreadsheet writes ({exc})"
        ) from None


def _document(raw: str) -> int | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _rating(raw: str) -> int | None:
    """A whole number from 1 to 5 ("4" or "4.0", as a spreadsheet may save it), else None."""
    if not re.fullmatch(r"[0-9]+(\.0*)?", raw):
        return None
    value = int(float(raw))
    return value if MIN_RATING <= value <= MAX_RATING else None


class _Problems:
    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        self.violations = Violations()

    @property
    def full(self) -> bool:
        return len(self.violations.items) >= MAX_PROBLEMS

    def add(self, row: int, column: str, problem: str) -> None:
        self.violations.add(self.field_name, f"row {row}, column {column!r}: {problem}")

    def raise_if_any(self) -> None:
        if self.full:
            self.violations.add(
                self.field_name, f"stopped after {MAX_PROBLEMS} problems; fix these first"
            )
        self.violations.raise_if_any(reason="BAD_REVIEW_SHEET")


@dataclass
class ReviewSummary:
    """The ratings as numbers: per system (mean and count per criterion, overall mean, rated
    rows, blank cells), and with several raters their pairwise agreement per criterion."""

    systems: dict[str, dict[str, Any]]
    rated_rows: int
    unrated_cells: int
    raters: list[str]
    agreement: list[dict[str, Any]]


def summarize(found: SheetRatings, key: ReviewKey) -> ReviewSummary:
    """Per-system numbers of every rating in ``found``; agreement when several raters rated."""
    by_system: dict[str, list[Rating]] = defaultdict(list)
    for rating in found.ratings:
        by_system[rating.system].append(rating)
    systems = {}
    for name in key.systems:
        ratings = by_system.get(name, [])
        values: dict[str, list[int]] = defaultdict(list)
        for rating in ratings:
            values[rating.criterion].append(rating.value)
        systems[name] = {
            "mean": {c: sum(v) / len(v) for c, v in values.items()},
            "count": {c: len(v) for c, v in values.items()},
            "overall_mean": sum(r.value for r in ratings) / len(ratings) if ratings else 0.0,
            "rated_rows": len({(r.rater, r.document, r.letter) for r in ratings}),
            "unrated_cells": found.unrated.get(name, 0),
        }
    return ReviewSummary(
        systems=systems,
        rated_rows=sum(s["rated_rows"] for s in systems.values()),
        unrated_cells=sum(found.unrated.values()),
        raters=list(found.raters),
        agreement=agreement(found.ratings, key.criteria) if len(found.raters) > 1 else [],
    )


def agreement(ratings: list[Rating], criteria: list[str]) -> list[dict[str, Any]]:
    """Pairwise agreement per criterion: over every item (document, summary) and every pair of
    raters who both rated it, the share of equal ratings, of ratings at most one point apart,
    and the mean absolute difference. Simple and cheap; chance-corrected coefficients
    (Krippendorff's alpha) are left to whoever reads the ratings from the sheets."""
    items: dict[tuple[str, int, str], dict[str, int]] = defaultdict(dict)
    for r in ratings:
        items[(r.criterion, r.document, r.letter)][r.rater] = r.value
    out = []
    for criterion in criteria:
        differences = [
            abs(a - b)
            for (c, _, _), given in items.items()
            if c == criterion
            for a, b in combinations([given[rater] for rater in sorted(given)], 2)
        ]
        if not differences:
            continue
        n = len(differences)
        out.append(
            {
                "criterion": criterion,
                "pairs": n,
                "exact": sum(d == 0 for d in differences) / n,
                "within_one": sum(d <= 1 for d in differences) / n,
                "mean_absolute_difference": sum(differences) / n,
            }
        )
    return out


# === the stores ================================================================================


@dataclass
class ExportPlan:
    spec: SheetSpec
    systems: list[tuple[str, str, SystemOutputs]]
    eval_ids: list[str]


@dataclass
class ExportOutcome:
    sheet: ArtifactRecord
    num_documents: int
    rows: int


@dataclass
class IngestPlan:
    sheet: ArtifactRecord
    key: ReviewKey
    found: SheetRatings


class ReviewSheets:
    """Exports review sheets from kept outputs and ingests them filled."""

    def __init__(
        self,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        paths: PathValidator,
        producer: str,
    ) -> None:
        """``producer``: the service's name; the sheet's lineage names its method under it."""
        self.datasets = datasets
        self.artifacts = artifacts
        self.paths = paths
        self.producer = producer

    # --- ExportReviewSheet ---------------------------------------------------------------------
    def plan_export(self, spec: SheetSpec) -> ExportPlan:
        """Every check before a sheet is written: the fields, each outputs dataset, that they
        cover the same rows and references, and where the copy goes."""
        spec = check_sheet_spec(spec)
        systems, eval_ids = [], []
        for i, (name, outputs_id) in enumerate(spec.systems):
            dataset = self.datasets.get(outputs_id, f"systems[{i}].outputs_id")
            lacking = [c for c in OUTPUT_COLUMNS if c not in dataset.column_names]
            if lacking:
                raise InvalidArgument.for_field(
                    f"systems[{i}].outputs_id",
                    f"dataset {dataset.id} is not an evaluation's outputs (it lacks columns "
                    f"{lacking}); use an Evaluation.outputs_id",
                )
            outputs = SystemOutputs.from_table(self.datasets.read(dataset, list(OUTPUT_COLUMNS)))
            systems.append((name, dataset.id, outputs))
            eval_ids.append(_eval_dataset(dataset))
        if not systems[0][2].rows:
            raise InvalidArgument.for_field("systems[0].outputs_id", "it holds no outputs")
        align([(name, outputs) for name, _, outputs in systems])
        if spec.output_path:
            self._output_path(spec.output_path)
        return ExportPlan(spec, systems, eval_ids)

    def _output_path(self, raw: str) -> Path:
        path = self.paths.resolve(raw, "output_path", must_exist=False)
        if path.suffix.lower() != ".csv":
            raise InvalidArgument.for_field("output_path", "the sheet's copy is a .csv file")
        if path.exists():
            raise AlreadyExists(
                f"output_path: {self.paths.display(path)} exists; a filled sheet is never "
                "overwritten (choose a new name)",
                reason="PATH_EXISTS",
                metadata={"field": "output_path"},
            )
        if not path.parent.is_dir():
            raise NotFound(
                f"output_path: the folder {self.paths.display(path.parent)} does not exist",
                reason="PATH_NOT_FOUND",
                metadata={"field": "output_path"},
            )
        return path

    def export(self, spec: SheetSpec, ctx: OperationContext, request_id: str) -> ExportOutcome:
        key_id = f"{request_id or ctx.name}/review-sheet"
        done = self.artifacts.find_by_request_id(key_id)
        if done is not None:  # committed before a restart; only the reply was lost
            self._copy(done, spec.output_path)
            meta = done.metadata
            return ExportOutcome(done, len(meta["documents"]), int(meta["rows"]))
        plan = self.plan_export(spec)
        spec = plan.spec
        ctx.progress(0.3, f"sampling {spec.num_documents} documents")
        table, key = build_sheet(
            plan.systems,
            num_documents=spec.num_documents,
            seed=spec.seed,
            excerpt_chars=spec.excerpt_chars,
            criteria=list(spec.criteria),
            blind=spec.blind,
        )
        eval_name = self._eval_name(plan.eval_ids[0])
        with self.artifacts.staging_path() as folder:
            folder.mkdir()
            (folder / SHEET_FILE).write_bytes(write_sheet(table))
            (folder / KEY_FILE).write_text(key.as_json(), encoding="utf-8")
            record = self.artifacts.commit_dir(
                folder,
                kind="report",
                name=spec.output_name or f"review-{eval_name}"[:128],
                metadata={
                    "format": SHEET_FORMAT,
                    "sheet": SHEET_FILE,
                    "key": KEY_FILE,
                    "token": key.token,
                    "systems": key.systems,
                    "criteria": key.criteria,
                    "blind": key.blind,
                    "documents": sorted(key.documents),
                    "rows": len(table) - 1,
                },
                lineage=Lineage(
                    parent_ids=[outputs_id for _, outputs_id, _ in plan.systems],
                    producer=f"{self.producer}/ExportReviewSheet",
                    operation=ctx.name,
                    config={
                        "systems": [
                            {"name": n, "outputs_id": o, "eval_dataset": e}
                            for (n, o, _), e in zip(plan.systems, plan.eval_ids, strict=True)
                        ],
                        "num_documents": spec.num_documents,
                        "seed": spec.seed,
                        "excerpt_chars": spec.excerpt_chars,
                        "criteria": list(spec.criteria),
                        "blind": spec.blind,
                    },
                ),
                request_id=key_id,
            )
        self._copy(record, spec.output_path)
        return ExportOutcome(record, len(key.documents), len(table) - 1)

    def _copy(self, record: ArtifactRecord, raw: str) -> None:
        """The reviewers' copy of the sheet at ``raw`` (inside the data roots), created, never
        overwritten: a copy already there with the same bytes (this operation's, before a
        restart) is left as it is."""
        if not raw:
            return
        data = (self.artifacts.verify(record) / SHEET_FILE).read_bytes()
        path = self.paths.resolve(raw, "output_path", must_exist=False)
        if path.is_file() and path.read_bytes() == data:
            return
        self._output_path(raw)
        try:
            with open(path, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            raise AlreadyExists(
                f"output_path: {self.paths.display(path)} exists; choose a new name",
                reason="PATH_EXISTS",
                metadata={"field": "output_path"},
            ) from None

    def _eval_name(self, dataset_id: str) -> str:
        try:
            return self.datasets.get(dataset_id).name if dataset_id else "outputs"
        except NotFound:
            return "outputs"

    # --- IngestReviewSheet ---------------------------------------------------------------------
    def plan_ingest(self, sheet_id: str, sheet_paths: list[str]) -> IngestPlan:
        """The sheet's key and every rating of the filled copies, checked (see read_ratings)."""
        if not sheet_id:
            raise InvalidArgument.for_field("sheet_id", "the sheet ExportReviewSheet made")
        artifact_ref(sheet_id, "sheet_id")
        try:
            record = self.artifacts.get(sheet_id, kind="report")
        except NotFound:
            try:  # another kind of artifact by that id or name: say what it is
                record = self.artifacts.get(sheet_id)
            except NotFound:
                raise NotFound(
                    f"sheet_id: no review sheet {excerpt(sheet_id)}",
                    reason="SHEET_NOT_FOUND",
                    metadata={"field": "sheet_id"},
                ) from None
        if record.kind != "report" or record.metadata.get("format") != SHEET_FORMAT:
            raise InvalidArgument.for_field(
                "sheet_id",
                f"{record.id} is a {record.kind}, not a review sheet (ExportReviewSheet makes "
                "them)",
            )
        if not sheet_paths:
            raise InvalidArgument.for_field("sheet_paths", "give at least one filled sheet")
        key = ReviewKey.from_json(
            (self.artifacts.verify(record) / KEY_FILE).read_text(encoding="utf-8")
        )
        found = SheetRatings()
        for i, raw in enumerate(sheet_paths):
            field_name = f"sheet_paths[{i}]"
            path = self.paths.resolve(raw, field_name)
            if not path.is_file():
                raise InvalidArgument.for_field(field_name, "not a file")
            size = path.stat().st_size
            if size > MAX_SHEET_BYTES:
                raise ResourceExhausted(
                    f"{field_name}: {size:,} bytes; a review sheet is at most {MAX_SHEET_BYTES:,}",
                    reason="SHEET_TOO_LARGE",
                    metadata={"field": field_name},
                )
            read_ratings(path.read_bytes(), key, field_name, f"sheet {i + 1}", found)
        return IngestPlan(record, key, found)

    def ingest(self, sheet_id: str, sheet_paths: list[str], ctx: OperationContext) -> ReviewSummary:
        plan = self.plan_ingest(sheet_id, sheet_paths)
        summary = summarize(plan.found, plan.key)
        ctx.metrics(
            {
                f"{name}.overall_mean": values["overall_mean"]
                for name, values in summary.systems.items()
                if values["rated_rows"]
            }
        )
        return summary


def _eval_dataset(dataset: Dataset) -> str:
    """The eval dataset an outputs dataset was made from, as its lineage names it."""
    return str(dataset.record.lineage.config.get("eval_dataset", ""))
