"""The built-in loaders: exact counts on real files, strict refusals that name the line."""

from __future__ import annotations

import csv
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgeline.contracts.loaders import LoadSource
from forgeline.errors import InvalidArgument, ResourceExhausted, Unavailable
from forgeline.plugins.loaders.files import (
    CsvLoader,
    JsonlLoader,
    ParquetLoader,
    TextLinesLoader,
    TsvLoader,
)
from forgeline.plugins.loaders.hf_disk import HfDiskLoader
from forgeline.plugins.loaders.http import HttpLoader, visible_text_blocks
from tests.conftest import shared_data


def load(loader, path: Path, **limits) -> pa.Table:
    return loader.load(LoadSource(path=path, **limits))


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def refusal(loader, path: Path, **limits) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as exc:
        load(loader, path, **limits)
    assert str(path) in exc.value.message
    return exc.value


# --- real data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["amazon_cells_labelled.txt", "imdb_labelled.txt"])
def test_uci_sentences_load_exactly(name):
    path = shared_data(f"en/{name}")
    loader = TextLinesLoader(TextLinesLoader.Config(delimiter="\t", label_type="int"))
    table = load(loader, path)
    assert table.num_rows == 1000
    assert table.column_names == ["text", "label"]
    labels = table.column("label").to_pylist()
    assert (labels.count(0), labels.count(1)) == (500, 500)
    # quotes are text, and U+0085 inside a sentence does not split it
    expected = path.read_bytes().decode().split("\n")[:-1]
    assert table.column("text").to_pylist() == [line.rsplit("\t", 1)[0] for line in expected]


def test_waimai_reviews_load_exactly():
    path = shared_data("zh/waimai_10k.csv")
    table = load(CsvLoader(), path)
    assert table.num_rows == 11_987
    assert table.column_names == ["label", "review"]
    assert table.schema.field("label").type == pa.int64()
    labels = table.column("label").to_pylist()
    assert (labels.count(0), labels.count(1)) == (7987, 4000)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert table.column("review").to_pylist() == [row["review"] for row in rows]


# --- csv and tsv ---------------------------------------------------------------------------------


def test_csv_quoting_numbers_and_bom(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        b'\xef\xbb\xbftext,stars,price,note\n"a, ""b""\nc",5,1.5,\n007,4,,x\n',
    )
    table = load(CsvLoader(), path)
    assert table.column_names == ["text", "stars", "price", "note"]
    assert table.to_pylist() == [
        {"text": 'a, "b"\nc', "stars": 5, "price": 1.5, "note": ""},
        {"text": "007", "stars": 4, "price": None, "note": "x"},
    ]
    assert table.schema.field("text").type == pa.string()


def test_csv_types_come_from_the_whole_column_not_the_first_block(tmp_path):
    lines = [f"{i},{i}" for i in range(200_000)] + ["oops,1"]
    table = load(CsvLoader(), write(tmp_path, "late.csv", "code,n\n" + "\n".join(lines) + "\n"))
    assert table.num_rows == 200_001
    assert table.schema.field("code").type == pa.string()
    assert table.schema.field("n").type == pa.int64()
    assert table.column("code")[200_000].as_py() == "oops"


def test_csv_row_longer_than_a_block(tmp_path):
    long_text = "y" * 3_000_000
    table = load(CsvLoader(), write(tmp_path, "long.csv", f"text\nx\n{long_text}\n"))
    assert table.column("text").to_pylist() == ["x", long_text]


def test_csv_wrong_field_count_names_the_line(tmp_path):
    body = "text,label\n" + "".join(f"row {i},1\n" for i in range(50_000)) + "bad,1,extra\n"
    error = refusal(CsvLoader(), write(tmp_path, "ragged.csv", body))
    assert error.reason == "MALFORMED_ROW"
    assert "line 50002 has 3 fields, expected 2" in error.message


def test_csv_invalid_utf8_names_the_line_and_other_encodings_read(tmp_path):
    path = write(tmp_path, "latin1.csv", "text,label\nok,0\ncafé,1\n".encode("latin-1"))
    error = refusal(CsvLoader(), path)
    assert error.reason == "MALFORMED_ROW" and "line 3 is not valid UTF-8" in error.message
    table = load(CsvLoader(CsvLoader.Config(encoding="latin-1")), path)
    assert table.column("text").to_pylist() == ["ok", "café"]


def test_csv_unknown_encoding_is_a_config_error():
    with pytest.raises(ValueError, match="unknown text encoding"):
        CsvLoader.Config(encoding="no-such-codec")


def test_empty_and_header_only_files_are_empty_datasets(tmp_path):
    for name, data in [
        ("empty.csv", b""),
        ("blank.csv", b"\xef\xbb\xbf\n\n"),
        ("head.csv", "a,b\n"),
    ]:
        assert refusal(CsvLoader(), write(tmp_path, name, data)).reason == "EMPTY_DATASET"


def test_limits_are_resource_exhausted(tmp_path):
    path = write(tmp_path, "rows.csv", "text\n" + "x\n" * 10)
    with pytest.raises(ResourceExhausted, match="10 rows is over the limit of 5"):
        load(CsvLoader(), path, max_rows=5)
    with pytest.raises(ResourceExhausted, match="over the limit of 8 bytes"):
        load(CsvLoader(), path, max_bytes=8)


def test_tsv_quotes_are_text_and_columns_are_numbered(tmp_path):
    path = write(tmp_path, "sms.tsv", 'ham\tsay "hi" to him\nspam\t"Win" now\n')
    table = load(TsvLoader(), path)
    assert table.column_names == ["column_0", "column_1"]
    assert table.column("column_1").to_pylist() == ['say "hi" to him', '"Win" now']
    with_header = load(TsvLoader(TsvLoader.Config(header=True)), path)
    assert with_header.column_names == ["ham", 'say "hi" to him']
    assert with_header.num_rows == 1


def test_tsv_does_not_claim_txt_files(tmp_path):
    txt = write(tmp_path, "a.TXT", "x\n")
    assert TextLinesLoader.detects(txt) and not TsvLoader.detects(txt)
    assert TsvLoader.detects(write(tmp_path, "a.tsv", "x\n"))


# --- jsonl ---------------------------------------------------------------------------------------


def test_jsonl_reads_objects_and_a_bom(tmp_path):
    rows = [{"text": "a", "label": 1, "meta": {"shop": "x"}}, {"text": "b", "label": 2.5}]
    body = "\ufeff" + "\n".join(json.dumps(r) for r in rows) + "\n\n"
    table = load(JsonlLoader(), write(tmp_path, "rows.jsonl", body))
    assert table.column("text").to_pylist() == ["a", "b"]
    assert table.column("label").to_pylist() == [1.0, 2.5]
    assert JsonlLoader.detects(tmp_path / "rows.jsonl")
    assert JsonlLoader.detects(write(tmp_path, "rows.ndjson", body))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"a": 1}\n{"a": 2}\n{"a": \n', "line 3 is not valid JSON"),
        (b'{"a": 1}\n[1, 2]\n', "line 2 is a JSON array, not an object"),
        (b'{"a": 1}\n{"a": "x"}\n', "line 2: field 'a' is a string, but on line 1 it is a number"),
        (b'{"a": "ok"}\n{"a": "caf\xe9"}\n', "line 2 is not valid UTF-8"),
    ],
)
def test_jsonl_malformed_lines_are_named(tmp_path, body, problem):
    error = refusal(JsonlLoader(), write(tmp_path, "bad.jsonl", body))
    assert error.reason == "MALFORMED_ROW"
    assert problem in error.message


def test_jsonl_type_change_far_into_the_file_is_named(tmp_path):
    body = "".join(f'{{"a": {i}}}\n' for i in range(60_000)) + '{"a": "x"}\n'
    error = refusal(JsonlLoader(), write(tmp_path, "late.jsonl", body))
    assert "line 60001: field 'a' is a string, but on line 1 it is a number" in error.message


def test_jsonl_line_longer_than_a_block(tmp_path):
    long_text = "z" * 3_000_000
    body = json.dumps({"text": "a"}) + "\n" + json.dumps({"text": long_text}) + "\n"
    assert load(JsonlLoader(), write(tmp_path, "long.jsonl", body)).num_rows == 2


# --- text lines ----------------------------------------------------------------------------------


def test_text_lines_without_delimiter(tmp_path):
    path = write(tmp_path, "lines.txt", "\ufefffirst line\r\n\nsecond\u2028still second\n")
    table = load(TextLinesLoader(), path)
    assert table.column_names == ["text"]
    assert table.column("text").to_pylist() == ["first line", "second\u2028still second"]


def test_text_lines_split_once_from_the_right(tmp_path):
    path = write(tmp_path, "s.txt", "a\tb\t1\nc \t0 \n")
    table = load(TextLinesLoader(TextLinesLoader.Config(delimiter="\t", label_type="int")), path)
    assert table.to_pylist() == [{"text": "a\tb", "label": 1}, {"text": "c ", "label": 0}]
    as_str = load(TextLinesLoader(TextLinesLoader.Config(delimiter="\t")), path)
    assert as_str.column("label").to_pylist() == ["1", "0"]


def test_text_lines_refusals_name_the_line(tmp_path):
    config = TextLinesLoader.Config(delimiter="\t", label_type="int")
    cases = [
        ("nodelim.txt", "a\t1\n\nb 2\n", "line 3 has no '\\t' between text and label"),
        ("label.txt", "a\t1\nb\tpositive\n", "line 2: label 'positive' is not an integer"),
        ("bytes.txt", b"a\t1\n\xff\xfe\t0\n", "line 2 is not valid UTF-8"),
    ]
    for name, body, problem in cases:
        error = refusal(TextLinesLoader(config), write(tmp_path, name, body))
        assert error.reason == "MALFORMED_ROW" and problem in error.message


# --- parquet -------------------------------------------------------------------------------------


def test_parquet_round_trip_and_refusals(tmp_path):
    table = pa.table({"text": ["a", "b"], "label": pa.array([0, 1], type=pa.int8())})
    pq.write_table(table, tmp_path / "t.parquet")
    assert load(ParquetLoader(), tmp_path / "t.parquet").equals(table)
    pq.write_table(table.slice(0, 0), tmp_path / "none.parquet")
    assert refusal(ParquetLoader(), tmp_path / "none.parquet").reason == "EMPTY_DATASET"
    bogus = write(tmp_path, "bogus.parquet", b"not parquet at all")
    assert refusal(ParquetLoader(), bogus).reason == "MALFORMED_FILE"
    with pytest.raises(ResourceExhausted, match="2 rows is over the limit of 1"):
        load(ParquetLoader(), tmp_path / "t.parquet", max_rows=1)


# --- Hugging Face save_to_disk folders -----------------------------------------------------------


def test_hf_disk_dataset_and_dataset_dict(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    dataset.save_to_disk(str(tmp_path / "one"))
    # a selection is saved as its rows, so the indices mapping must be honoured on load
    dataset.select([2, 0]).save_to_disk(str(tmp_path / "picked"))
    datasets.DatasetDict({"train": dataset, "test": dataset.select([1])}).save_to_disk(
        str(tmp_path / "dict")
    )
    for folder in ("one", "picked", "dict"):
        assert HfDiskLoader.detects(tmp_path / folder)
    assert not HfDiskLoader.detects(tmp_path)

    table = load(HfDiskLoader(), tmp_path / "one")
    assert type(table) is pa.Table
    assert table.to_pylist() == dataset.to_list()
    assert load(HfDiskLoader(), tmp_path / "picked").column("text").to_pylist() == ["c", "a"]
    test_split = load(HfDiskLoader(HfDiskLoader.Config(split="test")), tmp_path / "dict")
    assert test_split.column("text").to_pylist() == ["b"]
    with pytest.raises(InvalidArgument) as exc:
        load(HfDiskLoader(HfDiskLoader.Config(split="validation")), tmp_path / "dict")
    assert exc.value.violations[0].field == "config.split"
    assert "splits are train, test" in exc.value.message


# --- http ----------------------------------------------------------------------------------------

PAGES = {
    "/a.html": (
        200,
        "text/html; charset=utf-8",
        "<html><head><title>Hidden title</title><style>p {color: red}</style></head><body>"
        "<h1>Reviews</h1><p>First   paragraph &amp; more.</p><script>track()</script>"
        "<div>Second<br>third</div></body></html>",
    ),
    "/b.txt": (200, "text/plain", "plain one\n\nplain two\n"),
    "/gbk.html": (200, "text/html; charset=gbk", "<p>很快，好吃</p>"),
    "/missing": (404, "text/plain", "nope"),
    "/binary": (200, "application/octet-stream", "\x00\x01"),
    "/big.html": (200, "text/html", "<p>" + "x" * 5000 + "</p>"),
    "/to-ftp": (302, "text/plain", ""),
}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            status, content_type, body = PAGES.get(self.path, (404, "text/plain", "nope"))
            charset = content_type.partition("charset=")[2] or "utf-8"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if self.path == "/to-ftp":
                self.send_header("Location", "ftp://127.0.0.1/file")
            self.end_headers()
            self.wfile.write(body.encode(charset))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# The test site is on loopback, which the loader refuses unless the operator allows it.
LOOPBACK = ("127.0.0.1",)


def fetch(url: str, **config) -> pa.Table:
    return HttpLoader(HttpLoader.Config(**config)).load(LoadSource(url=url, http_allow=LOOPBACK))


def test_http_page_keeps_visible_text_only(site):
    table = fetch(f"{site}/a.html")
    assert table.column_names == ["text", "url"]
    assert table.to_pylist() == [
        {"text": "Reviews\nFirst paragraph & more.\nSecond\nthird", "url": f"{site}/a.html"}
    ]


def test_http_paragraph_mode_plain_text_and_charsets(site):
    assert fetch(f"{site}/a.html", mode="paragraph").column("text").to_pylist() == [
        "Reviews",
        "First paragraph & more.",
        "Second",
        "third",
    ]
    assert fetch(f"{site}/b.txt", mode="paragraph").column("text").to_pylist() == [
        "plain one",
        "plain two",
    ]
    assert fetch(f"{site}/gbk.html").column("text").to_pylist() == ["很快，好吃"]


def test_http_failures_are_unavailable_naming_the_url(site, tmp_path):
    with pytest.raises(Unavailable, match=r"/missing: HTTP 404"):
        fetch(f"{site}/missing")
    with pytest.raises(Unavailable, match="non-http"):
        fetch(f"{site}/to-ftp")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(Unavailable, match=f"127.0.0.1:{port}"):
        fetch(f"http://127.0.0.1:{port}/", timeout_seconds=5)
    with pytest.raises(InvalidArgument, match="application/octet-stream"):
        fetch(f"{site}/binary")
    with pytest.raises(ResourceExhausted, match="max_bytes_per_page"):
        fetch(f"{site}/big.html", max_bytes_per_page=1000)


def test_http_url_list_with_comments_and_skipping(site, tmp_path):
    urls = write(
        tmp_path, "urls.txt", f"# reviews\n{site}/a.html\n\n{site}/missing\n{site}/b.txt\n"
    )
    loader = HttpLoader(HttpLoader.Config(skip_failed=True))
    table = loader.load(LoadSource(path=urls, http_allow=LOOPBACK))
    assert table.column("url").to_pylist() == [f"{site}/a.html", f"{site}/b.txt"]
    with pytest.raises(Unavailable, match="missing"):
        HttpLoader().load(LoadSource(path=urls, http_allow=LOOPBACK))
    with pytest.raises(ResourceExhausted, match="lists 3 URLs; config.max_pages is 2"):
        HttpLoader(HttpLoader.Config(max_pages=2)).load(LoadSource(path=urls))


def test_http_refuses_other_schemes(tmp_path):
    with pytest.raises(InvalidArgument) as exc:
        HttpLoader().load(LoadSource(url="ftp://example.com/x"))
    assert exc.value.violations[0].field == "source"
    urls = write(tmp_path, "urls.txt", "http://example.com/\nfile:///etc/passwd\n")
    with pytest.raises(InvalidArgument, match="line 2: 'file:///etc/passwd' is not an http"):
        HttpLoader().load(LoadSource(path=urls))


def test_visible_text_blocks_drop_hidden_elements():
    html = (
        "<body><noscript>enable js</noscript><ul><li>one</li><li>two <b>bold</b></li></ul>"
        "<template><p>never</p></template><table><tr><td>cell</td></tr></table></body>"
    )
    assert visible_text_blocks(html) == ["one", "two bold", "cell"]
