"""DataService end to end over gRPC: a real server on a loopback port, real files, real SQLite."""

from __future__ import annotations

import json

import grpc
import pyarrow as pa
import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.convert import from_struct, struct
from forgeline.errors import (
    FailedPrecondition,
    ForgelineError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings, shared_data


def spec(name: str, **config) -> common_pb2.PluginSpec:
    return common_pb2.PluginSpec(name=name, config=struct(config))


def ingest(client: Client, source: str, **kwargs) -> pb.IngestDatasetResponse:
    op = client.data.IngestDataset(pb.IngestDatasetRequest(source=source, **kwargs))
    return client.wait(op, pb.IngestDatasetResponse)


def upload(client: Client, name: str, rows: list[dict], **header) -> pb.Dataset:
    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name=name, **header))
        for start in range(0, len(rows), 500):
            batch = [struct(r) for r in rows[start : start + 500]]
            yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=batch))
        yield pb.UploadRecordsRequest(commit=pb.UploadCommit())

    return client.data.UploadRecords(messages()).dataset


def read_all(client: Client, dataset_id: str) -> pa.Table:
    request = pb.ReadRowsRequest(dataset_id=dataset_id, format=pb.ROW_FORMAT_ARROW_IPC)
    batches = [pa.ipc.open_stream(r.arrow_ipc).read_all() for r in client.data.ReadRows(request)]
    return pa.concat_tables(batches)


def dataset_count(client: Client) -> int:
    return len(client.data.ListDatasets(pb.ListDatasetsRequest(page_size=500)).datasets)


# --- ingest ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["amazon_cells_labelled.txt", "imdb_labelled.txt"])
def test_ingest_reads_every_uci_sentence(client, name):
    path = shared_data(f"en/{name}")
    result = ingest(client, str(path), loader=spec("txt", delimiter="\t", label_type="int"))
    assert result.rows_read == 1000
    assert result.dataset.num_rows == 1000
    assert result.dataset.text_column == "text" and result.dataset.label_column == "label"
    labels = read_all(client, result.dataset.artifact.id).column("label").to_pylist()
    assert labels.count(0) == 500 and labels.count(1) == 500


def test_ingest_reads_every_waimai_review(client):
    path = shared_data("zh/waimai_10k.csv")
    result = ingest(client, str(path), columns=pb.ColumnMapping(text="review", label="label"))
    assert result.dataset.num_rows == 11987
    table = read_all(client, result.dataset.artifact.id)
    labels = table.column("label").to_pylist()
    assert (labels.count(0), labels.count(1)) == (7987, 4000)
    assert table.column("text")[0].as_py() == "很快，好吃，味道足，量大"


def test_ingest_csv_with_mapping_keeps_extra_columns(client, data_root):
    path = data_root / "reviews.csv"
    path.write_text("body,stars,shop\ngreat food,5,a\nawful,1,b\n", encoding="utf-8")
    result = ingest(client, str(path), columns=pb.ColumnMapping(text="body", label="stars"))
    dataset = result.dataset
    assert dataset.name == "reviews"
    assert [c.name for c in dataset.columns] == ["text", "label", "shop"]
    assert dataset.artifact.lineage.producer == "forgeline.v1.DataService/IngestDataset"
    assert read_all(client, dataset.artifact.id).column("shop").to_pylist() == ["a", "b"]


def test_ingest_jsonl_and_parquet(client, data_root):
    rows = [{"text": f"row {i}", "label": i % 3} for i in range(50)]
    (data_root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), data_root / "rows.parquet")
    for name in ("rows.jsonl", "rows.parquet"):
        dataset = ingest(client, str(data_root / name)).dataset
        assert dataset.num_rows == 50
        assert read_all(client, dataset.artifact.id).to_pylist() == rows


def test_ingest_refuses_bad_paths_before_starting(client, data_root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("text\nx\n")
    (data_root / "escape.csv").symlink_to(outside)
    before = dataset_count(client)
    with pytest.raises(NotFound, match="does not exist"):
        client.data.IngestDataset(pb.IngestDatasetRequest(source=str(data_root / "nope.csv")))
    with pytest.raises(PermissionDenied, match="outside the allowed roots"):
        client.data.IngestDataset(pb.IngestDatasetRequest(source=str(outside)))
    with pytest.raises(PermissionDenied):
        client.data.IngestDataset(pb.IngestDatasetRequest(source=str(data_root / "escape.csv")))
    with pytest.raises(InvalidArgument, match=r"'\.\.'") as dots:
        client.data.IngestDataset(pb.IngestDatasetRequest(source=f"{data_root}/../x.csv"))
    assert dots.value.violations[0].field == "source"
    assert dataset_count(client) == before


def test_ingest_unknown_loader_lists_known_ones(client, data_root):
    (data_root / "a.csv").write_text("text\nx\n")
    with pytest.raises(InvalidArgument) as exc:
        client.data.IngestDataset(
            pb.IngestDatasetRequest(source=str(data_root / "a.csv"), loader=spec("xlsx"))
        )
    assert exc.value.violations[0].field == "loader.name"
    assert "known:" in exc.value.message and "csv" in exc.value.message


def test_ingest_bad_loader_config_names_the_field(client, data_root):
    (data_root / "b.txt").write_text("x\t1\n")
    with pytest.raises(InvalidArgument) as exc:
        client.data.IngestDataset(
            pb.IngestDatasetRequest(source=str(data_root / "b.txt"), loader=spec("txt", bogus=1))
        )
    assert [v.field for v in exc.value.violations] == ["loader.config.bogus"]


def test_ingest_messy_files_fail_with_the_line_and_leave_nothing(client, data_root):
    (data_root / "latin1.csv").write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    (data_root / "empty.csv").write_text("")
    (data_root / "ragged.csv").write_text("text,label\nok,1\nbad,1,extra\n")
    (data_root / "nocol.csv").write_text("body,label\nx,1\n")
    before = dataset_count(client)
    # (a file without a text column is a tabular dataset: test_ingest_formats.py)
    missing = pb.ColumnMapping(text="review")
    for name, match, columns in [
        ("latin1.csv", "UTF-8", None),
        ("empty.csv", "empty|no rows", None),
        ("ragged.csv", "line", None),
        ("nocol.csv", "'review' not in source: columns are body, label", missing),
    ]:
        request = pb.IngestDatasetRequest(source=str(data_root / name), columns=columns)
        op = client.data.IngestDataset(request)
        with pytest.raises(InvalidArgument, match=match):
            client.wait(op, pb.IngestDatasetResponse)
    assert dataset_count(client) == before


def test_ingest_from_a_local_http_server(tmp_path):
    """Loopback is refused by default (tests/security/test_outbound_http.py); an operator who
    allows it ingests from a server there."""
    import http.server
    import threading

    pages = {
        "/a.html": "<html><body><p>First page text.</p><script>x()</script></body></html>",
        "/b.html": "<html><body><p>Second page.</p></body></html>",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib API
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "missing").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = make_settings(tmp_path / "home", [tmp_path], http_allow=["127.0.0.1"])
    service = ServiceThread("data", settings).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = tmp_path / "urls.txt"
        urls.write_text(f"# pages\n{base}/a.html\n{base}/b.html\n")
        with Client(service.address) as client:
            dataset = ingest(client, str(urls), loader=spec("http")).dataset
            texts = read_all(client, dataset.artifact.id).column("text").to_pylist()
        assert any("First page text." in t for t in texts)
        assert not any("x()" in t for t in texts)
        assert any("Second page." in t for t in texts)
    finally:
        service.stop()
        server.shutdown()


# --- clean -------------------------------------------------------------------------------------


def test_clean_chain_reports_each_step(client):
    rows = (
        [{"text": f"Ｒｅｖｉｅｗ  number {i}", "label": i % 2} for i in range(60)]
        + [{"text": "review   NUMBER 1", "label": 1}]  # duplicate of row 1 after normalizing
        + [{"text": "x" * 5000, "label": 0}]  # a length outlier
        + [{"text": "   ", "label": 0}]  # empty after normalizing
    )
    source = upload(client, "clean-me", rows)
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=source.artifact.id,
            cleaners=[
                spec("normalize_text"),
                spec("dedup_exact"),
                spec("zscore_outliers", threshold=3.0),
                spec("length_filter", min_chars=1),
            ],
        )
    )
    result = client.wait(op, pb.CleanDatasetResponse)
    steps = {s.cleaner: s for s in result.steps}
    assert [s.cleaner for s in result.steps] == [
        "normalize_text",
        "dedup_exact",
        "zscore_outliers",
        "length_filter",
    ]
    assert steps["normalize_text"].rows_in == steps["normalize_text"].rows_out == 63
    assert steps["dedup_exact"].rows_out == 62
    assert steps["dedup_exact"].examples and "duplicate" in steps["dedup_exact"].examples[0].reason
    assert steps["zscore_outliers"].rows_out == 61
    assert steps["length_filter"].rows_out == 60
    assert result.dataset.num_rows == 60
    assert result.dataset.name == "clean-me" and result.dataset.version == 2
    assert list(result.dataset.artifact.lineage.parent_ids) == [source.artifact.id]
    texts = read_all(client, result.dataset.artifact.id).column("text").to_pylist()
    assert texts[0] == "review number 0"


def test_clean_validates_every_cleaner_before_starting(client):
    source = upload(client, "validate-me", [{"text": "a"}])
    with pytest.raises(InvalidArgument) as exc:
        client.data.CleanDataset(
            pb.CleanDatasetRequest(
                dataset_id=source.artifact.id,
                cleaners=[
                    spec("dedup_exact"),
                    spec("zscore_outliers", threshold="high"),
                    spec("no_such_cleaner"),
                ],
            )
        )
    fields = [v.field for v in exc.value.violations]
    assert "cleaners[1].config.threshold" in fields
    assert "cleaners[2].name" in fields
    assert "dedup_exact" in exc.value.message  # the known cleaners are listed
    with pytest.raises(NotFound, match="no dataset"):
        client.data.CleanDataset(
            pb.CleanDatasetRequest(dataset_id="ds_missing", cleaners=[spec("dedup_exact")])
        )


def test_clean_that_removes_every_row_writes_nothing(client):
    source = upload(client, "all-short", [{"text": "ab"}, {"text": "cd"}])
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=source.artifact.id, cleaners=[spec("length_filter", min_chars=10)]
        )
    )
    with pytest.raises(FailedPrecondition, match="no rows"):
        client.wait(op, pb.CleanDatasetResponse)
    versions = client.data.ListDatasets(pb.ListDatasetsRequest(name="all-short")).datasets
    assert len(versions) == 1


# --- augment, split, profile ---------------------------------------------------------------------


def test_augment_is_reproducible_under_a_seed(client):
    rows = [
        {"text": f"the food was good and the delivery was quick {i}", "label": i % 2}
        for i in range(20)
    ]
    source = upload(client, "augment-me", rows)

    def run(seed):
        op = client.data.AugmentDataset(
            pb.AugmentDatasetRequest(
                dataset_id=source.artifact.id,
                seed=seed,
                augmenters=[spec("random_swap", alpha=0.3), spec("random_deletion", alpha=0.3)],
            )
        )
        return client.wait(op, pb.AugmentDatasetResponse)

    first, again, other = run(7), run(7), run(8)
    assert first.dataset.artifact.sha256 == again.dataset.artifact.sha256
    assert first.dataset.artifact.sha256 != other.dataset.artifact.sha256
    assert first.dataset.num_rows == 20 + sum(first.rows_added.values())
    assert first.rows_added["random_swap"] > 0


def test_split_is_stratified_and_seeded(client):
    rows = [{"text": f"t{i}", "label": int(i % 10 == 0)} for i in range(1000)]
    source = upload(client, "split-me", rows)

    def run(seed):
        op = client.data.SplitDataset(
            pb.SplitDatasetRequest(
                dataset_id=source.artifact.id,
                train_fraction=0.8,
                validation_fraction=0.1,
                test_fraction=0.1,
                stratify=True,
                seed=seed,
            )
        )
        return client.wait(op, pb.SplitDatasetResponse)

    result = run(1)
    sizes = [result.train.num_rows, result.validation.num_rows, result.test.num_rows]
    assert sizes == [800, 100, 100]
    for part in (result.train, result.validation, result.test):
        labels = read_all(client, part.artifact.id).column("label").to_pylist()
        assert labels.count(1) / len(labels) == pytest.approx(0.1)
    texts = [
        set(read_all(client, p.artifact.id).column("text").to_pylist())
        for p in (result.train, result.validation, result.test)
    ]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert run(1).train.artifact.sha256 == result.train.artifact.sha256
    assert run(2).train.artifact.sha256 != result.train.artifact.sha256
    with pytest.raises(InvalidArgument) as exc:
        client.data.SplitDataset(
            pb.SplitDatasetRequest(
                dataset_id=source.artifact.id, train_fraction=0.9, validation_fraction=0.5
            )
        )
    assert exc.value.violations[0].field == "test_fraction"


def test_profile_counts_labels_lengths_and_duplicates(client):
    rows = [{"text": "aaaa", "label": 0}] * 3 + [{"text": "bb", "label": 1}]
    source = upload(client, "profile-me", rows)
    op = client.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=source.artifact.id))
    profile = client.wait(op, pb.ProfileDatasetResponse).profile
    assert profile.num_rows == 4
    assert dict(profile.label_counts) == {"0": 3, "1": 1}
    assert profile.text_length.max == 4 and profile.text_length.min == 2
    assert profile.duplicate_rate == pytest.approx(0.5)


# --- upload and read -----------------------------------------------------------------------------


def test_upload_arrow_ipc_and_read_back_in_pages(client):
    table = pa.table({"text": [f"r{i}" for i in range(2500)], "label": list(range(2500))})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)

    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name="arrow-up"))
        yield pb.UploadRecordsRequest(batch=pb.RecordBatch(arrow_ipc=sink.getvalue().to_pybytes()))
        yield pb.UploadRecordsRequest(commit=pb.UploadCommit())

    dataset = client.data.UploadRecords(messages()).dataset
    assert dataset.num_rows == 2500
    assert read_all(client, dataset.artifact.id).equals(table)
    pages = list(
        client.data.ReadRows(
            pb.ReadRowsRequest(
                dataset_id=dataset.artifact.id,
                offset=1000,
                limit=1200,
                batch_size=500,
                columns=["label"],
            )
        )
    )
    assert [p.offset for p in pages] == [1000, 1500, 2000]
    values = [from_struct(r)["label"] for p in pages for r in p.rows]
    assert values == list(range(1000, 2200))
    with pytest.raises(InvalidArgument, match="columns"):
        list(
            client.data.ReadRows(
                pb.ReadRowsRequest(dataset_id=dataset.artifact.id, columns=["nope"])
            )
        )


def test_a_broken_upload_stream_leaves_nothing(client):
    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name="broken-upload"))
        yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=[struct({"text": "a"})]))
        raise ConnectionError("client died mid-stream")

    with pytest.raises((ForgelineError, ConnectionError, grpc.RpcError)):
        client.data.UploadRecords(messages())
    assert not client.data.ListDatasets(pb.ListDatasetsRequest(name="broken-upload")).datasets


def test_upload_request_id_is_idempotent(client):
    first = upload(client, "idem", [{"text": "a"}], request_id="upload-1")
    again = upload(client, "idem", [{"text": "a"}], request_id="upload-1")
    assert first.artifact.id == again.artifact.id
    assert len(client.data.ListDatasets(pb.ListDatasetsRequest(name="idem")).datasets) == 1


def test_upload_over_the_size_or_row_limit_is_refused(tmp_path):
    settings = make_settings(tmp_path / "home", [tmp_path], max_upload_bytes=50_000, max_rows=10)
    service = ServiceThread("data", settings).start()
    try:
        with Client(service.address) as small:
            rows = [{"text": "x" * 100} for _ in range(2000)]
            with pytest.raises(ResourceExhausted, match="exceeds 50000 bytes"):
                upload(small, "too-big", rows)
            with pytest.raises(ResourceExhausted, match="11 rows; the limit is 10"):
                upload(small, "too-many", [{"text": "x"}] * 11)
            assert not small.data.ListDatasets(pb.ListDatasetsRequest()).datasets
            assert upload(small, "fits", [{"text": "x"}] * 10).num_rows == 10
    finally:
        service.stop()


# --- operations and events -----------------------------------------------------------------------


def test_operations_are_listed_idempotent_and_their_events_resumable(client):
    source = upload(client, "ops", [{"text": f"t{i}", "label": i % 2} for i in range(100)])
    request = pb.ProfileDatasetRequest(dataset_id=source.artifact.id, request_id="profile-ops-1")
    op = client.data.ProfileDataset(request)
    assert client.data.ProfileDataset(request).name == op.name
    client.wait(op, pb.ProfileDatasetResponse)
    with pytest.raises(InvalidArgument) as exc:
        client.data.ProfileDataset(
            pb.ProfileDatasetRequest(dataset_id="ops", request_id="profile-ops-1")
        )
    assert exc.value.violations[0].field == "request_id"

    events = list(client.stream_events(op.name))
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(events) + 1))
    assert events[-1].state.state == common_pb2.OPERATION_STATE_SUCCEEDED
    later = list(client.stream_events(op.name, after_sequence=2))
    assert [e.sequence for e in later] == sequences[2:]

    done = client.operations.GetOperation(operations_pb2.GetOperationRequest(name=op.name))
    meta = client.metadata(done)
    assert meta.state == common_pb2.OPERATION_STATE_SUCCEEDED and meta.progress == 1.0
    assert meta.method == "forgeline.v1.DataService/ProfileDataset"
    page = client.operations.ListOperations(
        operations_pb2.ListOperationsRequest(name="operations", page_size=2, filter="done=true")
    )
    assert len(page.operations) == 2 and page.next_page_token
    with pytest.raises(NotFound):
        client.operations.GetOperation(operations_pb2.GetOperationRequest(name="operations/x"))


def test_cancel_stops_a_running_operation(client):
    rows = [
        {"text": f"near duplicate text number {i} with some padding words"} for i in range(4000)
    ]
    source = upload(client, "cancel-me", rows)
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=source.artifact.id, cleaners=[spec("dedup_near", threshold=0.9)]
        )
    )
    client.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    from forgeline.errors import Cancelled

    with pytest.raises(Cancelled):
        client.wait(op, pb.CleanDatasetResponse, timeout=120)
    assert len(client.data.ListDatasets(pb.ListDatasetsRequest(name="cancel-me")).datasets) == 1


def test_ingest_a_folder_of_files_tags_each_row_with_its_file(client, data_root):
    folder = data_root / "by-class"
    folder.mkdir()
    (folder / "neg.txt").write_text("awful\nso slow\n", encoding="utf-8")
    (folder / "pos.txt").write_text("tasty\n", encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # no loader takes it: ignored
    dataset = ingest(client, str(folder), columns=pb.ColumnMapping(label="file")).dataset
    assert dataset.label_column == "label"
    rows = read_all(client, dataset.artifact.id).to_pylist()
    assert rows == [
        {"text": "awful", "label": "neg"},
        {"text": "so slow", "label": "neg"},
        {"text": "tasty", "label": "pos"},
    ]


def test_ingest_detects_a_hugging_face_datasets_folder(client, data_root):
    import datasets

    saved = data_root / "hf-saved"
    datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}).save_to_disk(
        str(saved)
    )
    dataset = ingest(client, str(saved)).dataset
    assert dataset.num_rows == 3
    assert dataset.artifact.lineage.config["loader"] == "hf_disk"
