"""The review sheet's rules, as pure functions (forgeline.services.training.review): a blind,
seeded sheet whose key alone says which system wrote each summary; a spreadsheet's filled copy
read back into ratings per system; and every cell the key or the 1-5 scale does not allow
refused, naming the file's field, the row and the column."""

from __future__ import annotations

import csv
import io

import pytest

from forgeline.errors import InvalidArgument
from forgeline.services.training.review import (
    CUT,
    DEFAULT_CRITERIA,
    ReviewKey,
    SheetRatings,
    SheetSpec,
    SystemOutputs,
    align,
    build_sheet,
    check_sheet_spec,
    read_ratings,
    sheet_columns,
    summarize,
    write_sheet,
)

ROWS = list(range(10))
SOURCES = [f"Document {i}. It has a second sentence about case {i}." for i in ROWS]
REFERENCES = [f"Summary of case {i}." for i in ROWS]


def outputs(prefix: str, rows: list[int] = ROWS, references: list[str] = REFERENCES):
    return SystemOutputs(
        list(rows), [SOURCES[r] for r in rows], list(references), [f"{prefix} {r}" for r in rows]
    )


SYSTEMS = [("alpha-sys", "ds_a", outputs("ALPHA")), ("beta-sys", "ds_b", outputs("BETA"))]


def sheet(blind: bool = True, **options):
    settings = {"num_documents": 4, "seed": 7, "excerpt_chars": 2000, "blind": blind}
    settings.update(options)
    return build_sheet(SYSTEMS, criteria=list(DEFAULT_CRITERIA), **settings)


def test_every_summary_of_a_document_shows_the_same_excerpt_so_sources_do_not_unblind():
    # A baseline keeps the bare text, a model its prompt with the instruction: the sheet shows
    # the first system's source on every row of a document, whichever letter it is.
    prompted = SystemOutputs(
        list(ROWS),
        [f"Summarize: {SOURCES[r]}" for r in ROWS],
        list(REFERENCES),
        [f"MODEL {r}" for r in ROWS],
    )
    systems = [SYSTEMS[0], ("model-sys", "ds_m", prompted)]
    table, key = build_sheet(
        systems,
        criteria=list(DEFAULT_CRITERIA),
        num_documents=10,
        seed=3,
        excerpt_chars=2000,
        blind=True,
    )
    rows = as_rows(table)
    assert {key.documents[int(r["document"])][r["summary"]] for r in rows} == {
        "alpha-sys",
        "model-sys",
    }
    for row in rows:
        assert row["source_excerpt"] == SOURCES[int(row["document"])]


def as_rows(table: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(table[0], row, strict=True)) for row in table[1:]]


def filled(table: list[list[str]], ratings, delimiter: str = ",") -> bytes:
    """The sheet as a reviewer saves it: ``ratings(row dict)`` gives the cells to fill."""
    rows = as_rows(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table[0], delimiter=delimiter)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **ratings(row)})
    return buffer.getvalue().encode("utf-8-sig")


def ingest(data: bytes, key: ReviewKey, rater: str = "sheet 1", into=None) -> SheetRatings:
    found = into or SheetRatings()
    read_ratings(data, key, "sheet_paths[0]", rater, found)
    return found


def refusal(data: bytes, key: ReviewKey) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        ingest(data, key)
    assert {v.field for v in caught.value.violations} == {"sheet_paths[0]"}
    return [v.description for v in caught.value.violations]


def test_a_blind_sheet_hides_the_systems_and_its_key_unblinds_them():
    table, key = sheet()
    assert table[0] == sheet_columns(list(DEFAULT_CRITERIA), blind=True)
    assert "system" not in table[0]
    text = write_sheet(table).decode("utf-8-sig")
    assert "alpha-sys" not in text and "beta-sys" not in text  # only the key names them
    rows = as_rows(table)
    assert len(rows) == 4 * 2 and len(key.documents) == 4
    assert sorted(key.documents) == sorted({int(r["document"]) for r in rows})
    for row in rows:
        system = key.documents[int(row["document"])][row["summary"]]
        prefix = "ALPHA" if system == "alpha-sys" else "BETA"
        assert row["output"] == f"{prefix} {row['document']}"
        assert row["source_excerpt"] == SOURCES[int(row["document"])]
        assert row["reference"] == REFERENCES[int(row["document"])]
        assert row["sheet"] == key.token
        assert all(row[c] == "" for c in DEFAULT_CRITERIA) and row["comment"] == ""
    # Seeded: the same request gives the same sheet; the order is shuffled per document.
    assert sheet() == (table, key)
    many, many_key = sheet(num_documents=10)
    firsts = {letters["A"] for letters in many_key.documents.values()}
    assert firsts == {"alpha-sys", "beta-sys"}
    assert sheet(seed=8)[1].token != key.token
    # More documents than there are: all of them.
    assert len(sheet(num_documents=50)[1].documents) == 10


def test_an_open_sheet_names_each_system_in_order():
    table, key = sheet(blind=False)
    rows = as_rows(table)
    assert "system" in table[0]
    assert all(
        row["system"] == ("alpha-sys" if row["summary"] == "A" else "beta-sys") for row in rows
    )
    assert all(letters == {"A": "alpha-sys", "B": "beta-sys"} for letters in key.documents.values())


def test_cells_are_cut_kept_from_formulas_and_written_for_excel():
    long_source = SystemOutputs([0], ["x" * 100], ["=HYPERLINK(1)"], ["-1 point"])
    table, _ = build_sheet(
        [("a", "ds_a", long_source)],
        num_documents=1,
        seed=0,
        excerpt_chars=30,
        criteria=["faithfulness"],
        blind=True,
    )
    row = as_rows(table)[0]
    assert row["source_excerpt"] == "x" * (30 - len(CUT)) + CUT
    assert row["reference"] == "'=HYPERLINK(1)" and row["output"] == "'-1 point"
    data = write_sheet(table)
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data


def test_filled_ratings_are_read_back_per_system():
    table, key = sheet()
    scores = {"alpha-sys": ("5", "4", ""), "beta-sys": ("2", "3.0", "1")}

    def rate(row):
        system = key.documents[int(row["document"])][row["summary"]]
        return dict(zip(DEFAULT_CRITERIA, scores[system], strict=True))

    # Semicolons, as a spreadsheet saves CSV in some locales; a trailing blank line is ignored.
    data = filled(table, rate, delimiter=";") + b";;;\r\n"
    summary = summarize(ingest(data, key), key)
    alpha, beta = summary.systems["alpha-sys"], summary.systems["beta-sys"]
    assert alpha["mean"] == {"faithfulness": 5.0, "coverage": 4.0}
    assert alpha["count"] == {"faithfulness": 4, "coverage": 4}
    assert alpha["overall_mean"] == pytest.approx(4.5) and alpha["unrated_cells"] == 4
    assert beta["mean"] == {"faithfulness": 2.0, "coverage": 3.0, "fluency": 1.0}
    assert beta["overall_mean"] == pytest.approx(2.0) and beta["unrated_cells"] == 0
    assert alpha["rated_rows"] == beta["rated_rows"] == 4
    assert summary.rated_rows == 8 and summary.unrated_cells == 4
    assert summary.raters == ["sheet 1"] and summary.agreement == []
    # A row left blank is counted, not rated.
    blank = summarize(ingest(filled(table, lambda row: {}), key), key)
    assert blank.rated_rows == 0 and blank.unrated_cells == 8 * 3


def test_two_raters_are_compared_item_by_item():
    table, key = sheet(num_documents=2)
    first = filled(table, lambda row: {"faithfulness": "4", "coverage": "3"})
    second = filled(
        table,
        lambda row: {"faithfulness": "4" if row["summary"] == "A" else "2", "coverage": "3"},
    )
    found = ingest(first, key, "sheet 1")
    ingest(second, key, "sheet 2", into=found)
    summary = summarize(found, key)
    assert summary.raters == ["sheet 1", "sheet 2"]
    by = {a["criterion"]: a for a in summary.agreement}
    assert by["faithfulness"]["pairs"] == 4
    assert by["faithfulness"]["exact"] == pytest.approx(0.5)
    assert by["faithfulness"]["within_one"] == pytest.approx(0.5)
    assert by["faithfulness"]["mean_absolute_difference"] == pytest.approx(1.0)
    assert by["coverage"]["exact"] == 1.0 and "fluency" not in by
    # One file with a rater column counts its raters apart; the same rater twice is refused.
    rows = as_rows(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table[0])
    writer.writeheader()
    for rater in ("ann", "bo"):
        writer.writerows({**row, "rater": rater, "faithfulness": "3"} for row in rows)
    assert summarize(ingest(buffer.getvalue().encode(), key), key).raters == ["ann", "bo"]
    writer.writerow({**rows[0], "rater": "bo", "faithfulness": "3"})
    (problem,) = refusal(buffer.getvalue().encode(), key)
    assert problem.startswith(f"row {2 * len(rows) + 2}, column 'summary'")
    assert "rated again by rater 'bo'" in problem
    # ... in another file too.
    named = filled(table, lambda row: {"rater": "ann", "coverage": "2"})
    found = ingest(named, key)
    with pytest.raises(InvalidArgument) as caught:
        read_ratings(named, key, "sheet_paths[1]", "sheet 2", found)
    assert caught.value.violations[0].field == "sheet_paths[1]"
    assert "(first at row 2 of sheet_paths[0])" in caught.value.violations[0].description


def test_bad_cells_are_refused_naming_row_and_column():
    table, key = sheet()
    rows = as_rows(table)
    values = {0: "6", 1: "good", 2: "3.5", 3: "0"}

    def rate(row):
        at = rows.index(row)
        return {"coverage": values.get(at, "3")}

    problems = refusal(filled(table, rate), key)
    assert problems[0].startswith("row 2, column 'coverage': '6' is not a rating")
    assert [p.split(":")[0] for p in problems] == [
        f"row {n}, column 'coverage'" for n in (2, 3, 4, 5)
    ]
    # A document or letter the key does not hold, a row of another export.
    other = [list(r) for r in table]
    other[1][1] = "99"
    other[2][2] = "Z"
    other[3][0] = "0123456789ab"
    problems = refusal(write_sheet(other), key)
    assert problems[0].startswith("row 2, column 'document': '99' is not a document")
    assert problems[1].startswith("row 3, column 'summary': document")
    assert problems[2].startswith("row 4, column 'sheet': this row is from another export")
    # A whole sheet of another export, refused after a bounded list.
    _, other_key = sheet(seed=99, num_documents=10)
    many = [list(r) for r in table]
    many += [list(r) for r in table[1:]] * 5
    problems = refusal(write_sheet(many), other_key)
    assert len(problems) == 21 and problems[-1].startswith("stopped after 20")


def test_a_sheet_without_its_columns_or_not_utf8_is_refused():
    table, key = sheet()
    dropped = [[c for i, c in enumerate(r) if table[0][i] != "fluency"] for r in table]
    (problem,) = refusal(write_sheet(dropped), key)
    assert problem.startswith("row 1: columns ['fluency'] are missing")
    (problem,) = refusal("sheet,document\n\xe9".encode("latin-1"), key)
    assert "not UTF-8" in problem
    (problem,) = refusal(b"", key)
    assert "no header row" in problem


def test_systems_must_answer_the_same_rows_against_the_same_references():
    assert align([("a", outputs("A")), ("b", outputs("B"))]) == ROWS
    with pytest.raises(InvalidArgument) as caught:
        align([("a", outputs("A")), ("b", outputs("B", rows=ROWS[:5], references=REFERENCES[:5]))])
    assert caught.value.violations[0].field == "systems[1].outputs_id"
    assert "other rows" in caught.value.violations[0].description
    changed = ["changed"] + REFERENCES[1:]
    with pytest.raises(InvalidArgument) as caught:
        align([("a", outputs("A")), ("b", outputs("B")), ("c", outputs("C", references=changed))])
    assert caught.value.violations[0].field == "systems[2].outputs_id"
    assert "other references" in caught.value.violations[0].description


def test_an_export_request_is_checked_field_by_field_at_once():
    spec = check_sheet_spec(SheetSpec(systems=(("a", "ds_a"),)))
    assert spec.criteria == DEFAULT_CRITERIA and spec.num_documents == 20
    assert spec.excerpt_chars == 2000 and spec.blind
    bad = SheetSpec(
        systems=(("a", "ds_a"), ("a", ""), ("b c", "ds_b")),
        num_documents=-1,
        excerpt_chars=40_000,
        criteria=("clarity", "Clarity", "comment", " x", "a;b"),
        output_name="no/slash",
    )
    with pytest.raises(InvalidArgument) as caught:
        check_sheet_spec(bad)
    assert {v.field for v in caught.value.violations} == {
        "systems[1].name",
        "systems[1].outputs_id",
        "systems[2].name",
        "num_documents",
        "excerpt_chars",
        "criteria[1]",
        "criteria[2]",
        "criteria[3]",
        "criteria[4]",
        "output_name",
    }
    with pytest.raises(InvalidArgument) as caught:
        check_sheet_spec(SheetSpec(systems=()))
    assert caught.value.violations[0].field == "systems"


def test_the_key_survives_its_file():
    _, key = sheet()
    assert ReviewKey.from_json(key.as_json()) == key


def test_a_pipeline_chains_evaluations_into_a_review_sheet():
    """The evaluations' outputs_id reaches ExportReviewSheet by field path, offline."""
    from forgeline.gateway.catalog import local_catalog, plugins_by_kind, validate
    from forgeline.plugin_service import plugin_infos
    from forgeline.registry import PluginRegistry

    def baseline(name: str) -> str:
        data = '{dataset_id: "${{ steps.ingest.dataset.artifact.id }}", target_column: summary}'
        return (
            f"  - name: {name}\n    call: training.TrainBaseline\n"
            f"    with: {{train: {data}, eval: {data}, baseline: {{name: {name}}}}}\n"
        )

    pipeline = (
        "apiVersion: forgeline/v1\nkind: Pipeline\nmetadata: {name: review}\nsteps:\n"
        "  - {name: ingest, call: data.IngestDataset, with: {source: j.jsonl, name: j}}\n"
        + baseline("lead_k")
        + baseline("textrank")
        + "  - name: sheet\n    call: training.ExportReviewSheet\n    with:\n"
        "      systems:\n"
        '        - {name: lead, outputs_id: "${{ steps.lead_k.evaluation.outputs_id }}"}\n'
        '        - {name: rank, outputs_id: "${{ steps.textrank.evaluation.outputz }}"}\n'
        "      num_documents: 10\n"
    )
    plugins = plugins_by_kind(plugin_infos(PluginRegistry()))
    catalog = lambda name: local_catalog(name, plugins)  # noqa: E731
    validation = validate(pipeline, [], ["data", "training"], catalog)
    assert [p.field for p in validation.problems] == ["steps.sheet.with.systems[1].outputs_id"]
    fixed = validate(pipeline.replace("outputz", "outputs_id"), [], ["data", "training"], catalog)
    assert fixed.problems == []
    assert fixed.checked.methods["sheet"] == "forgeline.v1.TrainingService/ExportReviewSheet"
