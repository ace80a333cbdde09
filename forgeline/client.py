"""A small typed Python client for any forgeline service.

    with Client("127.0.0.1:50051") as client:
        op = client.data.CleanDataset(CleanDatasetRequest(...))
        result = client.wait(op, CleanDatasetResponse)

Every call carries a deadline, the bearer token when given, and an x-request-id. Failures arrive
as the same ForgelineError classes the server raised (mapped back by status code and reason, with
field violations), never as bare grpc.RpcError.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from forgeline.errors import ForgelineError, Unavailable, from_status
from forgeline.v1 import (
    common_pb2,
    compression_service_pb2_grpc,
    data_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    memory_service_pb2_grpc,
    pipeline_service_pb2_grpc,
    plugin_service_pb2_grpc,
    safety_service_pb2_grpc,
    serving_service_pb2_grpc,
    training_service_pb2_grpc,
    tuning_service_pb2_grpc,
)

M = TypeVar("M", bound=Message)
S = TypeVar("S")


def error_from_rpc(error: grpc.RpcError) -> ForgelineError:
    """The ForgelineError a failed call stands for."""
    status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    if status is None:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        status = status_pb2.Status(code=code.value[0], message=details or code.name)
    return from_status(status)


class _CallDefaults(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds deadline, token and request id to each call; maps failures to ForgelineError."""

    def __init__(self, token: str | None, timeout: float, stream_timeout: float) -> None:
        self._token, self._timeout, self._stream_timeout = token, timeout, stream_timeout

    def _details(self, details, streaming: bool):
        metadata = list(details.metadata or [])
        if self._token:
            metadata.append(("authorization", f"Bearer {self._token}"))
        if not any(k == "x-request-id" for k, _ in metadata):
            metadata.append(("x-request-id", uuid.uuid4().hex[:16]))
        timeout = details.timeout
        if timeout is None:
            timeout = self._stream_timeout if streaming else self._timeout
        return _Details(
            details.method,
            timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def _unary(self, continuation, details, request):
        call = continuation(self._details(details, streaming=False), request)
        if call.exception() is not None:
            raise error_from_rpc(call.exception()) from None
        return call

    def _stream(self, continuation, details, request):
        responses = continuation(self._details(details, streaming=True), request)

        def mapped():
            try:
                yield from responses
            except grpc.RpcError as exc:
                raise error_from_rpc(exc) from None

        return mapped()

    def intercept_unary_unary(self, continuation, details, request):
        return self._unary(continuation, details, request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return self._unary(continuation, details, request_iterator)

    def intercept_unary_stream(self, continuation, details, request):
        return self._stream(continuation, details, request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return self._stream(continuation, details, request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = (
            credentials,
            wait_for_ready,
            compression,
        )


class Client:
    """Stubs for one service address, plus helpers for operations and events."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        timeout: float = 30.0,
        stream_timeout: float = 3600.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates, private_key=client_key, certificate_chain=client_certificate
            )
            raw = grpc.secure_channel(address, credentials, options=options)
        else:
            raw = grpc.insecure_channel(address, options=options)
        self.address = address
        self._raw = raw
        self.channel = grpc.intercept_channel(raw, _CallDefaults(token, timeout, stream_timeout))
        self.data = data_service_pb2_grpc.DataServiceStub(self.channel)
        self.training = training_service_pb2_grpc.TrainingServiceStub(self.channel)
        self.tuning = tuning_service_pb2_grpc.TuningServiceStub(self.channel)
        self.compression = compression_service_pb2_grpc.CompressionServiceStub(self.channel)
        self.memory = memory_service_pb2_grpc.MemoryServiceStub(self.channel)
        self.safety = safety_service_pb2_grpc.SafetyServiceStub(self.channel)
        self.serving = serving_service_pb2_grpc.ServingServiceStub(self.channel)
        self.pipelines = pipeline_service_pb2_grpc.PipelineServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsStub(self.channel)
        self.events = event_service_pb2_grpc.EventServiceStub(self.channel)
        self.plugins = plugin_service_pb2_grpc.PluginServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def stub(self, stub_class: Callable[[Any], S]) -> S:
        """A stub of any service on this channel (a third party's included), e.g.
        ``client.stub(FooServiceStub)``: calls get the same deadline, token, request id and
        error mapping as the typed helpers above."""
        return stub_class(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Blocks until the service reports SERVING; Unavailable after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except ForgelineError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"service at {self.address} not SERVING after {timeout}s")
            time.sleep(0.1)

    def wait(
        self,
        operation: operations_pb2.Operation,
        response_type: type[M],
        timeout: float = 3600.0,
    ) -> M:
        """The operation's response once done; its error raised as a ForgelineError."""
        deadline = time.monotonic() + timeout
        while not operation.done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"{operation.name} not done after {timeout}s")
            step = duration_pb2.Duration(seconds=int(min(left, 30)) or 1)
            operation = self.operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=operation.name, timeout=step),
                timeout=step.seconds + 10,
            )
        if operation.HasField("error"):
            raise from_status(operation.error)
        response = response_type()
        operation.response.Unpack(response)
        return response

    def metadata(self, operation: operations_pb2.Operation) -> common_pb2.OperationMetadata:
        out = common_pb2.OperationMetadata()
        operation.metadata.Unpack(out)
        return out

    def stream_events(
        self, operation: str, after_sequence: int = 0, follow: bool = True
    ) -> Iterator[event_service_pb2.Event]:
        request = event_service_pb2.StreamEventsRequest(
            operation=operation, after_sequence=after_sequence, no_follow=not follow
        )
        for response in self.events.StreamEvents(request):
            yield response.event
