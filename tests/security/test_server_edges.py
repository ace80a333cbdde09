"""The server bootstrap at its edges (issue 18, items 9, 10, 11 and part of 20).

What every service promises a client whatever it sends, through real servers on loopback:
grpc.health.v1.Health/Watch works (Kubernetes and grpc clients use it); bytes that do not parse
are INVALID_ARGUMENT, never UNKNOWN; an exception that escapes a handler is a short INTERNAL with
no traceback and no server path; an error quoting a 5 MB id still fits gRPC's trailers (the
client saw RESOURCE_EXHAUSTED instead of NOT_FOUND); and a client closing a stream early is not
logged as a crash.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

import grpc
import pytest
import structlog
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from forgeline.artifacts import ArtifactStore
from forgeline.datasets import DatasetRepository
from forgeline.errors import (
    STATUS_BYTES,
    FailedPrecondition,
    FieldViolation,
    ForgelineError,
    InvalidArgument,
    NotFound,
    from_status,
)
from forgeline.operations import LongRunningMethod, OperationRunner, OperationStore
from forgeline.server import CallInterceptor, server_paths
from forgeline.v1 import data_service_pb2 as pb
from forgeline.v1 import event_service_pb2
from tests.conftest import ServiceThread, make_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HUGE_ID = "x" * 5_000_000
# Short enough for any reply's trailers: the message a client reads after a 5 MB id.
SHORT = 400


@pytest.fixture
def own_service(tmp_path) -> Iterator[ServiceThread]:
    """A data service of this test's own, for tests that stop it."""
    service = ServiceThread("data", make_settings(tmp_path / "home", [tmp_path])).start()
    yield service
    service.stop()


# --- item 9: Health/Watch ---------------------------------------------------------------------


def test_health_watch_streams_serving_for_every_service(data_service):
    services = [
        "",
        "forgeline.v1.DataService",
        "google.longrunning.Operations",
        "forgeline.v1.EventService",
        "forgeline.v1.PluginService",
    ]
    with grpc.insecure_channel(data_service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert next(watch).status == SERVING, service
            watch.cancel()


def test_health_watch_sees_the_service_stop_serving_at_a_graceful_stop(own_service):
    with grpc.insecure_channel(own_service.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="forgeline.v1.DataService"), timeout=60
        )
        assert next(watch).status == SERVING
        stopping = threading.Thread(target=own_service.stop)
        stopping.start()
        assert next(watch).status == NOT_SERVING
        stopping.join(60)


# --- item 10: undecodable requests, escaping exceptions ----------------------------------------

GARBAGE = b"\xff\xff\xff\xff\x0f not a protobuf message"


@pytest.mark.parametrize(
    "method, shape",
    [
        ("/forgeline.v1.DataService/GetDataset", "unary_unary"),
        ("/google.longrunning.Operations/GetOperation", "unary_unary"),
        ("/forgeline.v1.EventService/StreamEvents", "unary_stream"),
        ("/forgeline.v1.DataService/UploadRecords", "stream_unary"),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream_stream"),
    ],
)
def test_undecodable_request_bytes_are_invalid_argument(data_service, method, shape):
    with grpc.insecure_channel(data_service.address) as channel:
        call = getattr(channel, shape)(method)  # no serializers: the bytes go as they are
        request = GARBAGE if shape.startswith("unary") else iter([GARBAGE])
        with pytest.raises(grpc.RpcError) as caught:
            reply = call(request, timeout=30)
            if shape.endswith("stream"):
                list(reply)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in caught.value.details()
    assert from_status(rpc_status.from_call(caught.value)).reason == "MALFORMED_REQUEST"


def test_undecodable_bytes_without_the_token_are_unauthenticated(tmp_path):
    """Auth comes first: a refused call's request is never parsed."""
    settings = make_settings(tmp_path / "home", [tmp_path], auth_token="s3cret")
    service = ServiceThread("data", settings).start()
    try:
        with grpc.insecure_channel(service.address) as channel:
            call = channel.unary_unary("/forgeline.v1.DataService/GetDataset")
            with pytest.raises(grpc.RpcError) as caught:
                call(GARBAGE, timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as caught:
                call(GARBAGE, timeout=30, metadata=[("authorization", "Bearer s3cret")])
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        service.stop()


def with_edge_server(
    handlers: dict[str, grpc.RpcMethodHandler], calls: Callable, interceptor: CallInterceptor
) -> list:
    """Runs ``calls(channel)`` against handlers of service ``t.Edge`` behind ``interceptor``, on a
    loopback grpc.aio server: the kernel's interceptor around behaviour no service ships."""

    async def main() -> list:
        server = grpc.aio.server(interceptors=[interceptor])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Edge", handlers)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await calls(channel)
        finally:
            await server.stop(None)

    return asyncio.run(main())


def _reply(message: str) -> pb.GetDatasetResponse:
    return pb.GetDatasetResponse(dataset=pb.Dataset(name=message))


def test_an_exception_escaping_a_handler_is_a_short_internal_error(tmp_path):
    secret = tmp_path / "secret" / "weights.bin"

    async def crash(request, context):
        raise OSError(f"cannot read {secret}")

    async def crash_midstream(request, context):
        yield _reply("first")
        raise KeyError(str(secret))

    async def wrong_type(request, context):
        return "a string where a message belongs"  # grpc alone answers UNKNOWN for this

    codec = {
        "request_deserializer": pb.GetDatasetRequest.FromString,
        "response_serializer": pb.GetDatasetResponse.SerializeToString,
    }
    handlers = {
        "Crash": grpc.unary_unary_rpc_method_handler(crash, **codec),
        "CrashMidstream": grpc.unary_stream_rpc_method_handler(crash_midstream, **codec),
        "WrongType": grpc.unary_unary_rpc_method_handler(wrong_type, **codec),
    }

    async def calls(channel) -> list:
        errors = []
        for name in handlers:
            method = f"/t.Edge/{name}"
            request = pb.GetDatasetRequest(dataset_id="d").SerializeToString()
            try:
                if name == "CrashMidstream":
                    [_ async for _ in channel.unary_stream(method)(request, timeout=30)]
                else:
                    await channel.unary_unary(method)(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                errors.append((name, exc.code(), exc.details()))
        return errors

    with structlog.testing.capture_logs() as logs:
        errors = with_edge_server(handlers, calls, CallInterceptor())
    assert [(name, code) for name, code, _ in errors] == [
        (name, grpc.StatusCode.INTERNAL) for name in handlers
    ]
    for name, _, details in errors:
        assert details == f"internal error in /t.Edge/{name}; the service log has the details"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["rpc_crashed"] * 3


# --- item 11: huge values and server paths in errors ---------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    [
        lambda c: c.operations.GetOperation(operations_pb2.GetOperationRequest(name=HUGE_ID)),
        lambda c: c.operations.WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=HUGE_ID, timeout=duration_pb2.Duration(seconds=1)
            )
        ),
        lambda c: c.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=HUGE_ID)),
        lambda c: c.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=HUGE_ID)),
        lambda c: list(
            c.events.StreamEvents(event_service_pb2.StreamEventsRequest(operation=HUGE_ID))
        ),
    ],
    ids=["GetOperation", "WaitOperation", "CancelOperation", "DeleteOperation", "StreamEvents"],
)  # fmt: skip
def test_a_5mb_operation_name_is_not_found_with_a_short_message(client, lookup):
    with pytest.raises(NotFound) as caught:
        lookup(client)
    assert_short(caught.value)


def test_a_5mb_dataset_id_gets_a_short_answer(client):
    # The data service refuses such an id as INVALID_ARGUMENT before looking it up (item 12).
    with pytest.raises((NotFound, InvalidArgument)) as caught:
        client.data.GetDataset(pb.GetDatasetRequest(dataset_id=HUGE_ID))
    assert_short(caught.value)


def test_artifact_and_dataset_lookups_quote_a_5mb_id_briefly(tmp_path):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    try:
        for lookup in (
            artifacts.get,
            partial(artifacts.get, kind="model"),
            DatasetRepository(artifacts).get,
        ):
            with pytest.raises(NotFound) as caught:
                lookup(HUGE_ID)
            assert len(caught.value.message) < SHORT  # its metadata is capped on the wire
            assert "5,000,000 characters" in caught.value.message
    finally:
        artifacts.close()


def assert_short(error: ForgelineError) -> None:
    """The error a client got quotes an excerpt of the 5 MB id and says how long it was."""
    assert len(error.message) < SHORT
    assert "5,000,000 characters" in error.message
    assert all(len(value) < SHORT for value in error.metadata.values())


@pytest.mark.parametrize("char", ["é", "😀"])  # two and four bytes, percent-encoded in grpc-message
def test_an_error_of_any_size_fits_the_trailers(char):
    """The interceptor's last line of defence: whatever an error quotes, its code arrives."""
    wide = char * 200_000
    error = InvalidArgument(
        f"everything is wrong: {wide}",
        metadata={f"key{i}-{wide[:500]}": wide for i in range(50)},
        violations=[FieldViolation(f"rows[{i}].{wide[:1000]}", wide) for i in range(200)],
    )

    async def refuse(request, context):
        raise error

    handlers = {"Refuse": grpc.unary_unary_rpc_method_handler(refuse)}

    async def calls(channel) -> list:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/t.Edge/Refuse")(b"", timeout=60)
        return [caught.value]

    (failure,) = with_edge_server(handlers, calls, CallInterceptor())
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(failure)
    assert status.ByteSize() <= STATUS_BYTES
    got = from_status(status)
    assert isinstance(got, InvalidArgument) and got.violations
    assert got.message.startswith(f"everything is wrong: {char}{char}")


def test_errors_name_server_paths_relative_to_their_root(tmp_path):
    home, root = tmp_path / "home", tmp_path / "data"
    settings = make_settings(home, [root])

    async def missing(request, context):
        raise NotFound(
            f"{root}/corpus/a.csv does not exist (looked in {root}); the cache at "
            f"{home}/artifacts/objects/ab is empty",
            metadata={"path": f"{root}/corpus/a.csv"},
            violations=[FieldViolation("source", f"{home}/staging is full")],
        )

    handlers = {"Missing": grpc.unary_unary_rpc_method_handler(missing)}

    async def calls(channel) -> list:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/t.Edge/Missing")(b"", timeout=30)
        return [caught.value]

    (failure,) = with_edge_server(handlers, calls, CallInterceptor(server_paths(settings)))
    assert failure.code() == grpc.StatusCode.NOT_FOUND
    assert failure.details() == (
        "corpus/a.csv does not exist (looked in <data root>); the cache at "
        "$FORGELINE_HOME/artifacts/objects/ab is empty"
    )
    got = from_status(rpc_status.from_call(failure))
    assert got.metadata == {"path": "corpus/a.csv"}
    assert got.violations == [FieldViolation("source", "$FORGELINE_HOME/staging is full")]
    everything = failure.details() + str(rpc_status.from_call(failure))
    assert str(tmp_path) not in everything


def test_a_failed_operation_names_server_paths_relative_to_their_root(tmp_path):
    home, root = tmp_path / "home", tmp_path / "data"
    method = "forgeline.v1.TestService/Fail"

    def fail(request, ctx):
        raise FailedPrecondition(f"{root}/corpus/a.csv changed while {home}/staging was read")

    store = OperationStore(tmp_path / "operations.db")
    runner = OperationRunner(store, 1, mask=server_paths(make_settings(home, [root])))
    runner.register(LongRunningMethod(method, StringValue, StringValue, fail))
    try:
        name = asyncio.run(runner.start(method, StringValue(value="x"))).name
        deadline = time.monotonic() + 30
        while not (row := store.get(name)).done:
            assert time.monotonic() < deadline, "the operation never ended"
            time.sleep(0.01)
    finally:
        runner.stop()
        store.close()
    error = from_status(status_pb2.Status.FromString(row.error))
    expected = "corpus/a.csv changed while $FORGELINE_HOME/staging was read"
    assert (error.message, row.message) == (expected, expected)


# --- item 20: a stream closed early is no crash ------------------------------------------------


@pytest.mark.parametrize("ending", ["client cancels", "client closes its channel", "server stops"])
def test_reflection_streams_closed_early_are_not_logged_as_crashes(own_service, ending):
    """A client reads one answer of a reflection stream and drops it (as `forgeline validate`
    did): the server's response generator, stopped at a `yield` while the unread answers fill
    the stream's window, is closed by asyncio, which used to be logged as rpc_crashed."""
    release = threading.Event()

    def requests() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        for _ in range(500):  # more answers than the stream's flow-control window holds
            yield reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="forgeline.v1.DataService"
            )
        release.wait(60)  # the stream stays open until the test ends it

    with structlog.testing.capture_logs() as logs:
        channel = grpc.insecure_channel(own_service.address)
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        try:
            streams = [stub.ServerReflectionInfo(requests(), timeout=60) for _ in range(5)]
            for stream in streams:
                assert next(stream).file_descriptor_response.file_descriptor_proto
            if ending == "client cancels":
                for stream in streams:
                    stream.cancel()
            elif ending == "client closes its channel":
                channel.close()
            own_service.stop()
        finally:
            release.set()
            channel.close()
    assert [e for e in logs if e["log_level"] == "error"] == []
