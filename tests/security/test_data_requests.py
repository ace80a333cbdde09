"""Security claims of the data service's requests, against a real data service on loopback:

- names, references and enums are validated like training validates ``output_name``
  (forgeline.names): no path, NUL byte or 100k characters reaches the catalog;
- bad input gets a precise status (INVALID_ARGUMENT naming the field, NOT_FOUND), never
  INTERNAL or UNKNOWN, and no message echoes a whole input or an absolute server path;
- an upload is committed only after its explicit commit message: a cancelled, killed or
  timed-out client leaves no dataset and no staging files.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from forgeline.artifacts import ArtifactStore
from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import ForgelineError, InvalidArgument, NotFound
from forgeline.v1 import common_pb2, data_service_pb2_grpc
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import REPO, ServiceThread, make_settings, serving

HUGE = "x" * 100_000
# A reply's message must stay far below gRPC's 8 KiB default metadata limit.
SHORT = 1_000
# Long enough for a loaded machine to start a call and move one small batch over loopback.
CALL_SECONDS = 30.0


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("requests-root")


@pytest.fixture(scope="module")
def client(root, tmp_path_factory) -> Iterator[Client]:
    with serving("data", make_settings(tmp_path_factory.mktemp("home"), [root])) as c:
        yield c


def upload_messages(name: str, rows: list[dict], *, commit: bool = True):
    yield pb.UploadRecordsRequest(header=pb.UploadHeader(name=name))
    yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=[struct(r) for r in rows]))
    if commit:
        yield pb.UploadRecordsRequest(commit=pb.UploadCommit())


@pytest.fixture(scope="module")
def small(client) -> pb.Dataset:
    return client.data.UploadRecords(upload_messages("small", [{"text": "a", "label": 1}])).dataset


def names(client: Client) -> set[str]:
    listed = client.data.ListDatasets(pb.ListDatasetsRequest(page_size=500)).datasets
    return {d.name for d in listed}


def invalid(call, field: str) -> InvalidArgument:
    """``call()`` fails with INVALID_ARGUMENT naming ``field``, in a short message."""
    with pytest.raises(InvalidArgument) as caught:
        call()
    assert [v.field for v in caught.value.violations] == [field], caught.value.message
    assert len(caught.value.message) < SHORT
    return caught.value


def ingest(client: Client, **fields) -> pb.IngestDatasetResponse:
    return client.wait(
        client.data.IngestDataset(pb.IngestDatasetRequest(**fields)), pb.IngestDatasetResponse
    )


# --- item 12: names, references, enums and page sizes ------------------------------------------

BAD_NAMES = ["../../evil", "a\x00b", HUGE, "small@", "-leading-dash", "a/b"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=["dots", "nul", "100k", "at", "dash", "slash"])
def test_a_bad_upload_name_is_refused_and_nothing_is_kept(client, name):
    invalid(
        lambda: client.data.UploadRecords(upload_messages(name, [{"text": "x"}])), "header.name"
    )
    assert names(client) <= {"small"}


@pytest.mark.parametrize("name", ["../../evil", "a\x00b", HUGE])
def test_bad_names_elsewhere_are_refused_naming_their_field(client, root, small, name):
    (root / "ok.csv").write_text("text\nfine\n")
    invalid(lambda: ingest(client, source="ok.csv", name=name), "name")
    invalid(
        lambda: client.data.CleanDataset(
            pb.CleanDatasetRequest(dataset_id=small.artifact.id, output_name=name)
        ),
        "output_name",
    )
    invalid(
        lambda: client.data.AugmentDataset(
            pb.AugmentDatasetRequest(dataset_id=small.artifact.id, output_name=name)
        ),
        "output_name",
    )
    invalid(lambda: client.data.ListDatasets(pb.ListDatasetsRequest(name=name)), "name")


@pytest.mark.parametrize("ref", ["small@", "small@0", "small@x", "../../evil", HUGE, "a\x00b"])
def test_a_bad_dataset_reference_is_invalid_not_some_other_dataset(client, small, ref):
    invalid(lambda: client.data.GetDataset(pb.GetDatasetRequest(dataset_id=ref)), "dataset_id")
    invalid(lambda: list(client.data.ReadRows(pb.ReadRowsRequest(dataset_id=ref))), "dataset_id")
    invalid(
        lambda: client.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=ref)),
        "dataset_id",
    )
    assert client.data.GetDataset(pb.GetDatasetRequest(dataset_id="small@1")).dataset.version == 1


def test_an_unknown_row_format_and_a_negative_page_size_are_refused(client, small):
    invalid(
        lambda: list(
            client.data.ReadRows(pb.ReadRowsRequest(dataset_id=small.artifact.id, format=99))
        ),
        "format",
    )
    invalid(lambda: client.data.ListDatasets(pb.ListDatasetsRequest(page_size=-1)), "page_size")
    for token in ("9" * 5_000, "²", "x" * 100_000):
        invalid(
            lambda token=token: client.data.ListDatasets(pb.ListDatasetsRequest(page_token=token)),
            "page_token",
        )


# --- item 10: precise statuses ------------------------------------------------------------------


def test_a_five_megabyte_source_is_invalid_with_a_short_message(client):
    invalid(lambda: ingest(client, source="s" * 5_000_000), "source")


def test_a_source_with_a_long_component_is_invalid(client):
    invalid(lambda: ingest(client, source="d" * 300 + "/a.csv"), "source")


def test_a_tilde_is_a_plain_character_never_a_home_folder(client, root):
    with pytest.raises(NotFound) as caught:
        ingest(client, source="~nosuchuser/a.csv")
    assert caught.value.reason == "PATH_NOT_FOUND"
    with pytest.raises(NotFound):  # not the service user's ~/a.csv, outside the roots
        ingest(client, source="~/a.csv")
    (root / "~literal").mkdir()
    (root / "~literal" / "a.csv").write_text("text\ntilde\n")
    assert ingest(client, source="~literal/a.csv").dataset.num_rows == 1


@pytest.mark.parametrize("seed", [-1, 2**40])
def test_a_seed_out_of_range_is_invalid_before_any_operation(client, small, seed):
    invalid(
        lambda: client.data.SplitDataset(
            pb.SplitDatasetRequest(dataset_id=small.artifact.id, train_fraction=1.0, seed=seed)
        ),
        "seed",
    )
    invalid(
        lambda: client.data.CleanDataset(
            pb.CleanDatasetRequest(
                dataset_id=small.artifact.id,
                cleaners=[common_pb2.PluginSpec(name="dedup_exact")],
                seed=seed,
            )
        ),
        "seed",
    )


@pytest.mark.parametrize(
    "payload",
    [b"garbage", b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"x" * 64, b"\xff" * 8],
    ids=["short", "bad-flatbuffer", "negative-length"],
)
def test_garbage_arrow_ipc_is_invalid_naming_the_batch(client, payload):
    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name="garbage"))
        yield pb.UploadRecordsRequest(batch=pb.RecordBatch(arrow_ipc=payload))
        yield pb.UploadRecordsRequest(commit=pb.UploadCommit())

    invalid(lambda: client.data.UploadRecords(messages()), "batch[0].arrow_ipc")
    assert "garbage" not in names(client)


def test_a_csv_with_two_columns_of_one_name_names_the_column(client, root):
    (root / "twice.csv").write_text("text,score,score\nhello,1,2\n")
    error = invalid(lambda: ingest(client, source="twice.csv"), "source")
    assert error.reason == "DUPLICATE_COLUMN" and "'score'" in error.message


# --- item 11: no whole input and no server path in a message ----------------------------------


def test_a_huge_unknown_id_is_refused_with_a_short_message(client):
    with pytest.raises(ForgelineError) as caught:
        client.data.GetDataset(pb.GetDatasetRequest(dataset_id="ds_" + "0" * 5_000_000))
    assert isinstance(caught.value, InvalidArgument | NotFound)
    assert len(caught.value.message) < SHORT


def test_paths_are_named_relative_to_their_root(client, root):
    with pytest.raises(NotFound) as missing:
        ingest(client, source=str(root / "sub" / "missing.csv"))
    assert "data root #1: sub/missing.csv" in missing.value.message
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "ragged.csv").write_text("text,label\na,1\nb,2,3\n")
    with pytest.raises(InvalidArgument) as malformed:
        ingest(client, source="sub/ragged.csv")
    assert "data root #1: sub/ragged.csv" in malformed.value.message
    for error in (missing.value, malformed.value):
        assert str(root) not in error.message


# --- item 6: only an explicit commit makes a dataset ------------------------------------------


async def stalled_upload(address: str, name: str, *, cancel: bool, timeout: float | None):
    """An asyncio client's upload that sends its header and one batch, then stalls mid-upload
    until it is cancelled or its deadline passes; what awaiting the call raised. (The asyncio
    client is the one whose interrupted streams reached the server as finished ones.)"""
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        sent, never = asyncio.Event(), asyncio.Event()

        async def messages():
            rows = [{"text": f"row {i}"} for i in range(100)]
            for message in upload_messages(name, rows, commit=False):
                yield message
            sent.set()
            await never.wait()

        stub = data_service_pb2_grpc.DataServiceStub(channel)
        call = stub.UploadRecords(messages(), timeout=timeout)
        await asyncio.wait_for(sent.wait(), CALL_SECONDS)
        if cancel:
            call.cancel()
        try:
            await call
        except (asyncio.CancelledError, grpc.aio.AioRpcError) as exc:
            return exc
    raise AssertionError("the stalled upload finished")


def own_service(tmp_path: Path) -> ServiceThread:
    """A data service of the test's own: the test stops it (a graceful stop lets every
    in-flight call end first) and then inspects its store."""
    return ServiceThread("data", make_settings(tmp_path / "home", [tmp_path])).start()


def nothing_kept(service: ServiceThread, name: str) -> None:
    """No dataset by that name in the stopped service's store, and no file left in staging."""
    artifacts = service.settings.artifacts_dir
    assert not [p for p in (artifacts / "staging").rglob("*") if p.is_file()]
    store = ArtifactStore(artifacts)
    try:
        assert not store.list(kind="dataset", name=name)
    finally:
        store.close()


def test_a_stream_that_ends_without_its_commit_keeps_nothing(tmp_path):
    service = own_service(tmp_path)
    try:
        with Client(service.address) as client:
            unfinished = upload_messages("unfinished", [{"text": "a"}], commit=False)
            error = invalid(lambda: client.data.UploadRecords(unfinished), "commit")
            assert error.reason == "UPLOAD_NOT_COMMITTED"
            assert "unfinished" not in names(client)
    finally:
        service.stop()
    nothing_kept(service, "unfinished")


def test_a_cancelled_upload_keeps_nothing(tmp_path):
    service = own_service(tmp_path)
    try:
        stopped = asyncio.run(stalled_upload(service.address, "cancel", cancel=True, timeout=None))
    finally:
        service.stop()
    assert isinstance(stopped, asyncio.CancelledError)
    nothing_kept(service, "cancel")


def test_an_upload_past_its_deadline_keeps_nothing(tmp_path):
    service = own_service(tmp_path)
    try:
        # The deadline covers one small batch over a connection already made: ample.
        stopped = asyncio.run(stalled_upload(service.address, "late", cancel=False, timeout=3.0))
    finally:
        service.stop()
    assert stopped.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    nothing_kept(service, "late")


KILLED_CLIENT = textwrap.dedent(
    """
    import sys, threading, grpc
    from forgeline.convert import struct
    from forgeline.v1 import data_service_pb2 as pb, data_service_pb2_grpc

    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name="killed"))
        rows = [struct({"text": f"row {i}"}) for i in range(100)]
        yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=rows))
        print("sent", flush=True)
        threading.Event().wait()  # mid-upload until SIGKILL

    with grpc.insecure_channel(sys.argv[1]) as channel:
        data_service_pb2_grpc.DataServiceStub(channel).UploadRecords(messages())
    """
)


def test_an_upload_whose_client_is_killed_keeps_nothing(tmp_path):
    service = own_service(tmp_path)
    try:
        client = subprocess.Popen(
            [sys.executable, "-c", KILLED_CLIENT, service.address], stdout=subprocess.PIPE, cwd=REPO
        )
        try:
            assert client.stdout.readline() == b"sent\n"
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait(CALL_SECONDS)
        assert client.returncode == -signal.SIGKILL
    finally:
        service.stop()
    nothing_kept(service, "killed")
