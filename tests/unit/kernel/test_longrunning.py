"""forgeline.longrunning: a servicer declares each long-running method once, by its name in the
proto; the kernel resolves it and makes its handler, and a declaration the proto contradicts
stops the service at start with every problem named."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from google.longrunning import operations_pb2, operations_proto_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from forgeline.errors import FailedPrecondition
from forgeline.longrunning import resolve_methods, service_descriptor, start_handler
from forgeline.operations import MethodSpec, OperationRunner, OperationStore
from forgeline.server import Kernel, ServiceDefinition, _build
from forgeline.v1 import data_service_pb2 as pb
from forgeline.v1 import data_service_pb2_grpc
from tests.conftest import make_settings

DATA = "forgeline.v1.DataService"
LONG_RUNNING = ["IngestDataset", "CleanDataset", "AugmentDataset", "SplitDataset", "ProfileDataset"]


def run(request, ctx):
    return pb.ProfileDatasetResponse()


def declared(*names: str) -> list[MethodSpec]:
    return [MethodSpec(name, run) for name in names]


def misdeclared(specs: list[MethodSpec], servicer: object = None) -> str:
    with pytest.raises(FailedPrecondition) as caught:
        resolve_methods(service_descriptor(DATA), specs, servicer)
    assert caught.value.reason == "SERVICE_MISDECLARED"
    return caught.value.message


def test_a_declaration_gets_its_full_name_and_types_from_the_proto():
    methods = resolve_methods(service_descriptor(DATA), declared(*LONG_RUNNING))
    clean = next(m for m in methods if m.method.endswith("/CleanDataset"))
    assert clean.method == "forgeline.v1.DataService/CleanDataset"
    assert clean.request_type is pb.CleanDatasetRequest
    # from the method's (google.longrunning.operation_info).response_type
    assert clean.response_type is pb.CleanDatasetResponse
    assert clean.run is run and clean.resumable


def test_an_unknown_method_name_is_refused_naming_the_long_running_ones():
    message = misdeclared(declared(*LONG_RUNNING, "CleanDatasets"))
    assert "'CleanDatasets' is declared but the service has no such method" in message
    assert "AugmentDataset, CleanDataset, IngestDataset, ProfileDataset, SplitDataset" in message


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("GetDataset", "unary returning forgeline.v1.GetDatasetResponse"),
        ("ReadRows", "a stream returning forgeline.v1.ReadRowsResponse"),
    ],
)
def test_a_method_the_proto_says_is_not_long_running_is_refused(name, shape):
    message = misdeclared(declared(*LONG_RUNNING, name))
    assert f"{name} is declared long-running but the proto says it is {shape}" in message


def test_a_long_running_method_left_undeclared_is_refused():
    message = misdeclared(declared("IngestDataset", "CleanDataset", "AugmentDataset"))
    assert "SplitDataset returns google.longrunning.Operation but is not declared" in message
    assert "ProfileDataset returns google.longrunning.Operation but is not declared" in message


def test_a_method_declared_twice_is_refused():
    assert "SplitDataset is declared twice" in misdeclared(declared(*LONG_RUNNING, "SplitDataset"))


class HandWritten(data_service_pb2_grpc.DataServiceServicer):
    async def CleanDataset(self, request, context):
        raise AssertionError("the kernel makes this handler")


def test_a_declared_method_with_a_hand_written_handler_is_refused():
    message = misdeclared(declared(*LONG_RUNNING), HandWritten())
    assert "CleanDataset is declared and also handled by HandWritten.CleanDataset" in message
    # the generated base class's UNIMPLEMENTED placeholders are not hand-written handlers
    methods = declared(*LONG_RUNNING)
    assert resolve_methods(
        service_descriptor(DATA), methods, data_service_pb2_grpc.DataServiceServicer()
    )


def test_every_problem_is_named_at_once():
    message = misdeclared(declared("CleanDataset", "Nope", "GetDataset"))
    for problem in ("'Nope' is declared", "GetDataset is declared", "SplitDataset returns"):
        assert problem in message


def test_a_service_no_proto_describes_is_refused():
    with pytest.raises(FailedPrecondition, match="no proto service acme.v1.Nothing is loaded"):
        service_descriptor("acme.v1.Nothing")


# --- the response type where a proto names it differently, or not at all -----------------------


def _add_with_dependencies(pool: descriptor_pool.DescriptorPool, file, added: set[str]) -> None:
    for dependency in file.dependencies:
        _add_with_dependencies(pool, dependency, added)
    if file.name not in added:
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)


def echo_service(response_types: dict[str, str]):
    """A service ``acme.v1.EchoService`` whose methods return Operations naming these response
    types (an empty one names none), in a pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    _add_with_dependencies(pool, operations_pb2.DESCRIPTOR, set())
    file = descriptor_pb2.FileDescriptorProto(
        name="acme/v1/echo.proto",
        package="acme.v1",
        syntax="proto3",
        dependency=["google/longrunning/operations.proto"],
    )
    file.message_type.add(name="EchoRequest").field.add(
        name="request_id", number=1, type=9, label=1
    )
    file.message_type.add(name="EchoResponse").field.add(name="text", number=1, type=9, label=1)
    service = file.service.add(name="EchoService")
    for name, response in response_types.items():
        method = service.method.add(
            name=name,
            input_type=".acme.v1.EchoRequest",
            output_type=".google.longrunning.Operation",
        )
        if response:
            method.options.Extensions[operations_proto_pb2.operation_info].response_type = response
    pool.Add(file)
    return pool.FindServiceByName("acme.v1.EchoService")


def test_a_response_type_may_be_named_with_its_package_or_without():
    service = echo_service({"Short": "EchoResponse", "Qualified": "acme.v1.EchoResponse"})
    methods = resolve_methods(service, [MethodSpec("Short", run), MethodSpec("Qualified", run)])
    assert {m.response_type.DESCRIPTOR.full_name for m in methods} == {"acme.v1.EchoResponse"}


def test_a_long_running_method_that_names_no_response_type_is_refused():
    service = echo_service({"Echo": "", "Lost": "NoSuchMessage"})
    with pytest.raises(FailedPrecondition) as caught:
        resolve_methods(service, [MethodSpec("Echo", run), MethodSpec("Lost", run)])
    assert "Echo names no response type: add option (google.longrunning.operation_info)" in str(
        caught.value
    )
    assert "Lost's operation_info names response type 'NoSuchMessage', which is not loaded" in str(
        caught.value
    )


def test_the_made_handler_starts_the_operation_once_per_request_id(tmp_path: Path):
    service = echo_service({"Echo": "EchoResponse"})
    request_type = message_factory.GetMessageClass(service.methods_by_name["Echo"].input_type)

    def echo(request, ctx):
        return method.response_type(text=request.request_id.upper())

    (method,) = resolve_methods(service, [MethodSpec("Echo", echo)])
    store = OperationStore(tmp_path / "operations.db")
    runner = OperationRunner(store, workers=1)
    runner.register(method)
    handler = start_handler(runner, method)
    assert handler.__name__ == "Echo"
    try:
        first = asyncio.run(handler(request_type(request_id="abc"), None))
        deadline = time.monotonic() + 30
        while not store.get(first.name).done:
            assert time.monotonic() < deadline, "the operation never ended"
            time.sleep(0.01)
        again = asyncio.run(handler(request_type(request_id="abc"), None))
    finally:
        runner.stop()
        store.close()
    assert again.name == first.name and again.done
    response = method.response_type()
    assert again.response.Unpack(response) and response.text == "ABC"


# --- at server start --------------------------------------------------------------------------


def test_a_misdeclared_service_stops_before_it_listens_and_closes_the_kernel(tmp_path: Path):
    kernel = Kernel.open(make_settings(tmp_path, [tmp_path]), "data")
    closed = []

    def build(kernel: Kernel) -> list[ServiceDefinition]:
        return [
            ServiceDefinition(
                full_name=DATA,
                servicer=data_service_pb2_grpc.DataServiceServicer(),
                add_to_server=data_service_pb2_grpc.add_DataServiceServicer_to_server,
                methods=declared("CleanDataset"),
                on_close=lambda: closed.append(True),
            )
        ]

    with pytest.raises(FailedPrecondition, match="service forgeline.v1.DataService is misdeclared"):
        _build(build, kernel)
    assert closed == [True]
    with pytest.raises(Exception, match="closed"):
        kernel.operations.store.get("operations/x")
