"""Ingesting unfamiliar files as a new user would: the obvious format is recognised, quoting is an
explicit choice, a parse that looks wrong is said (in the response and the profile), and a
table without text is a dataset too. Real data service on loopback, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.client import Client
from forgeline.contracts.loaders import LoadSource
from forgeline.convert import struct
from forgeline.errors import InvalidArgument
from forgeline.plugins.loaders.files import CsvLoader, TextLinesLoader, TsvLoader
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import REPO, shared_data

ADULT = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income",
]  # fmt: skip


def spec(name: str, **config) -> common_pb2.PluginSpec:
    return common_pb2.PluginSpec(name=name, config=struct(config))


def ingest(client: Client, source: Path, **kwargs) -> pb.IngestDatasetResponse:
    op = client.data.IngestDataset(pb.IngestDatasetRequest(source=str(source), **kwargs))
    return client.wait(op, pb.IngestDatasetResponse)


def profile(client: Client, dataset_id: str) -> pb.DatasetProfile:
    op = client.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=dataset_id))
    return client.wait(op, pb.ProfileDatasetResponse).profile


def read_all(client: Client, dataset_id: str) -> pa.Table:
    request = pb.ReadRowsRequest(dataset_id=dataset_id, format=pb.ROW_FORMAT_ARROW_IPC)
    return pa.concat_tables(
        pa.ipc.open_stream(r.arrow_ipc).read_all() for r in client.data.ReadRows(request)
    )


def codes(warnings) -> list[str]:
    return [w.code for w in warnings]


def write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def labelled_sentences(n: int = 100) -> list[str]:
    """sentence<TAB>label lines, like the UCI files: stray double quotes, no header."""
    lines = [f"Sentence number {i} about the phone, quite ordinary.\t{i % 2}" for i in range(n)]
    lines[4] = 'The "clip" is not comfortable at all.\t0'
    lines[7] = "\"You'll love it!\t1"  # a quote opening a field runs on to the next quote
    lines[51] = 'I kept saying "what?"\t0'
    return lines


# --- item 17: the obvious format, explicit quoting, warnings --------------------------------


def test_a_tab_separated_txt_is_read_as_text_and_label(client, data_root):
    path = write(data_root / "formats", "labelled.txt", labelled_sentences())
    done = ingest(client, path)
    assert done.rows_read == 100 and list(done.warnings) == []
    assert (done.dataset.text_column, done.dataset.label_column) == ("text", "label")
    table = read_all(client, done.dataset.artifact.id)
    assert table.schema.field("label").type == pa.int64()
    assert table.column("text")[7].as_py() == "\"You'll love it!"
    assert not any("\t" in text for text in table.column("text").to_pylist())
    assert list(profile(client, done.dataset.artifact.id).warnings) == []


def test_lines_that_do_not_all_split_alike_stay_whole_and_are_warned(client, data_root):
    lines = labelled_sentences()
    lines[10] = "A tab\tinside this one.\t1"  # two tabs: not the obvious format any more
    done = ingest(client, write(data_root / "formats", "uneven.txt", lines))
    assert done.dataset.columns[0].name == "text" and len(done.dataset.columns) == 1
    assert codes(done.warnings) == ["LABEL_IN_TEXT"]
    assert "delimiter '\\t'" in done.warnings[0].message
    # the profile says it too, for whoever looks at the dataset later
    assert "LABEL_IN_TEXT" in codes(profile(client, done.dataset.artifact.id).warnings)


def test_detection_can_be_turned_off_and_then_the_label_in_the_text_is_warned(client, data_root):
    path = write(data_root / "formats", "whole.txt", labelled_sentences())
    done = ingest(client, path, loader=spec("txt", detect=False))
    assert [c.name for c in done.dataset.columns] == ["text"]
    assert codes(done.warnings) == ["LABEL_IN_TEXT"]
    assert "values 0, 1" in done.warnings[0].message


def test_a_label_before_the_text_is_warned_with_the_fix(client, data_root):
    lines = [f"{'spam' if i % 4 else 'ham'}\tmessage {i} with a few more words" for i in range(40)]
    done = ingest(client, write(data_root / "formats", "sms.txt", lines))
    assert codes(done.warnings) == ["LABEL_IN_TEXT"]
    message = done.warnings[0].message
    assert "starts with a tab and a label-like field in 40 of 40 rows (values ham, spam)" in message
    assert "csv loader (delimiter '\\t', header: false, quoting: false)" in message


@pytest.mark.parametrize("name", ["amazon_cells_labelled.txt", "imdb_labelled.txt"])
def test_the_uci_sentences_need_no_loader(client, name):
    done = ingest(client, shared_data(f"en/{name}"))
    assert done.rows_read == 1000 and list(done.warnings) == []
    labels = read_all(client, done.dataset.artifact.id).column("label").to_pylist()
    assert labels.count(0) == 500 and labels.count(1) == 500


def test_quotes_that_merge_rows_are_warned_and_quoting_can_be_turned_off(client, data_root):
    path = write(data_root / "formats", "quoted.tsvlike", labelled_sentences())
    options = {"delimiter": "\t", "header": False, "column_names": ["text", "label"]}
    merged = ingest(client, path, loader=spec("csv", **options))
    assert merged.rows_read == 56  # lines 8-52 became one field
    assert codes(merged.warnings) == ["ROWS_SPAN_LINES", "LONG_FIELD"]
    assert "read 56 rows from 100 lines" in merged.warnings[0].message
    assert "quoting: false" in merged.warnings[0].message
    assert "column 'text': row 7 is" in merged.warnings[1].message
    plain = ingest(client, path, loader=spec("csv", quoting=False, **options))
    assert plain.rows_read == 100 and list(plain.warnings) == []


def test_the_imdb_sentences_through_the_csv_loader_are_warned_three_ways(client):
    path = shared_data("en/imdb_labelled.txt")
    done = ingest(
        client,
        path,
        loader=spec("csv", delimiter="\t"),
        columns=pb.ColumnMapping(text=_first_sentence(path)),
    )
    assert done.rows_read == 747  # the probe's count: 1,000 lines, one a header, 252 merged
    assert codes(done.warnings) == ["HEADER_LOOKS_LIKE_DATA", "ROWS_SPAN_LINES", "LONG_FIELD"]
    assert "7,944 characters" in done.warnings[2].message
    assert codes(profile(client, done.dataset.artifact.id).warnings) == codes(done.warnings)
    fixed = ingest(client, path, loader=spec("tsv", column_names=["text", "label"]))
    assert fixed.rows_read == 1000 and list(fixed.warnings) == []


def _first_sentence(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")[0]


def test_quoting_and_column_names_are_checked_config():
    assert CsvLoader.Config().quoting is True and TsvLoader.Config().quoting is False
    with pytest.raises(ValueError, match="repeat"):
        CsvLoader.Config(column_names=["a", "a"])
    with pytest.raises(ValueError):
        TsvLoader.Config(quoting="sometimes")


def test_column_names_must_match_the_file(tmp_path):
    path = write(tmp_path, "two.csv", ["a,b", "1,2"])
    with pytest.raises(InvalidArgument) as error:
        CsvLoader(CsvLoader.Config(column_names=["x", "y", "z"])).load(LoadSource(path=path))
    assert error.value.violations[0].field == "loader.config.column_names"
    assert "3 names for a file of 2 columns" in error.value.message


def test_detection_keeps_string_labels_and_whole_lines_of_free_text(tmp_path):
    lines = [f"message {i} here\t{'spam' if i % 3 else 'ham'}" for i in range(30)]
    table = TextLinesLoader().load(LoadSource(path=write(tmp_path, "sms.txt", lines)))
    assert table.schema.field("label").type == pa.string()
    prose = [f"line {i}\twith a tab and then more words {i}" for i in range(30)]
    whole = TextLinesLoader().load(LoadSource(path=write(tmp_path, "prose.txt", prose)))
    assert whole.column_names == ["text"]  # the last field is not label-like


# --- item 19: tables without text ------------------------------------------------------------


def test_a_table_without_a_text_column_is_a_dataset(client, data_root):
    rows = ["race,age,score"] + [
        f"{r},{20 + i},{s}"
        for i, (r, s) in enumerate(
            [("White", "Low"), ("Black", "High"), ("Asian", "Medium"), ("White", "High")] * 5
        )
    ]
    done = ingest(client, write(data_root / "formats", "scores.csv", rows))
    assert done.dataset.num_rows == 20 and done.dataset.text_column == ""
    assert codes(done.warnings) == ["NO_TEXT_COLUMN"]
    assert "race, age, score" in done.warnings[0].message
    request = pb.CleanDatasetRequest(
        dataset_id=done.dataset.artifact.id,
        cleaners=[
            spec("filter_rows", where="race in ['White', 'Black']"),
            spec("derive_column", column="pred", expression="score != 'Low'"),
        ],
    )
    cleaned = client.wait(client.data.CleanDataset(request), pb.CleanDatasetResponse)
    table = read_all(client, cleaned.dataset.artifact.id)
    assert table.num_rows == 15
    assert table.column("pred").to_pylist()[:3] == [False, True, True]
    assert cleaned.steps[0].examples[0].text == "race='Asian'"
    assert cleaned.metrics["filter_rows_rows_dropped"] == 5


def test_the_uci_adult_census_rows_ingest_and_filter(client):
    path = shared_data("fairness/adult/adult.data")
    loader = spec("csv", header=False, column_names=ADULT, trim_whitespace=True)
    done = ingest(client, path, loader=loader, columns=pb.ColumnMapping(label="income"))
    assert done.dataset.num_rows == 32561 and done.dataset.label_column == "label"
    assert dict((c.name, c.type) for c in done.dataset.columns)["age"] == "int64"
    request = pb.CleanDatasetRequest(
        dataset_id=done.dataset.artifact.id,
        cleaners=[spec("filter_rows", where="race in ['White', 'Black']")],
    )
    cleaned = client.wait(client.data.CleanDataset(request), pb.CleanDatasetResponse)
    assert cleaned.dataset.num_rows == 30940


def test_the_cli_prints_the_warnings_of_an_ingest(data_service, data_root):
    path = write(data_root / "formats", "cli.txt", labelled_sentences())
    env = {
        **os.environ,
        "FORGELINE_ADDRESSES": json.dumps({"data": data_service.address}),
        "COLUMNS": "300",
    }
    run = subprocess.run(
        [sys.executable, "-m", "forgeline", "data", "ingest", str(path), "--json"]
        + ["--loader", 'txt={"detect": false}'],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["numRows"] == "100"  # stdout stays one JSON document
    assert "warning LABEL_IN_TEXT: column 'text' ends with a tab" in run.stderr
