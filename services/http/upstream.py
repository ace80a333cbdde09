"""The serving service as the HTTP face reaches it: one asyncio gRPC channel (grpc.aio, on the
face's own event loop: no call waits for a thread), and the caller's bearer token forwarded on
every call (the face checks it first when auth is on; the service decides when the face itself
has none). Failures come back as the ForgelineError the service's status stands for, its
details (field violations, reason) kept."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forgeline.errors import ForgelineError, from_status
from forgeline.settings import Settings
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import serving_service_pb2_grpc

SERVING = "serving"
# A generation may take long on a CPU; the deadline still bounds a call that hangs.
GENERATE_TIMEOUT_S = 600.0
STREAM_TIMEOUT_S = 3600.0
HEALTH_TIMEOUT_S = 2.0
# gRPC metadata carries printable ASCII only; anything else (or a huge value) is not forwarded,
# and the service answers as for a call without a token.
MAX_TOKEN_CHARS = 4096
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class Upstream:
    """Calls to the serving service at ``settings.address_for("serving")``. The channel is
    opened on the event loop of the first call (an asyncio channel belongs to one loop)."""

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        self.address = address or settings.address_for(SERVING)
        self._timeout = settings.call_timeout_seconds
        self._options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        self._channel: grpc.aio.Channel | None = None

    def _stubs(self) -> tuple[serving_service_pb2_grpc.ServingServiceStub, Any]:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
            self._serving = serving_service_pb2_grpc.ServingServiceStub(self._channel)
            self._health = health_pb2_grpc.HealthStub(self._channel)
        return self._serving, self._health

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def serving(self) -> bool:
        """Whether the serving service answers its health check SERVING."""
        try:
            reply = await self._stubs()[1].Check(
                health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S
            )
        except Exception:  # down, refused, timed out: not ready, whatever the cause
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def predict_batch(
        self, request: pb.PredictBatchRequest, token: str
    ) -> pb.PredictBatchResponse:
        return await _unary(self._stubs()[0].PredictBatch, request, token, self._timeout)

    async def deployments(self, token: str) -> list[pb.Deployment]:
        """Every deployment (all pages)."""
        found: list[pb.Deployment] = []
        page = ""
        while True:
            response = await _unary(
                self._stubs()[0].ListDeployments,
                pb.ListDeploymentsRequest(page_size=500, page_token=page),
                token,
                self._timeout,
            )
            found.extend(response.deployments)
            if not (page := response.next_page_token):
                return found

    async def generate(self, request: pb.GenerateRequest, token: str) -> pb.GenerateResponse:
        return await _unary(self._stubs()[0].Generate, request, token, GENERATE_TIMEOUT_S)

    def generate_stream(self, request: pb.GenerateStreamRequest, token: str) -> Stream:
        """The stream's messages; cancelling it (``Stream.close``) stops the generation in the
        service."""
        call = self._stubs()[0].GenerateStream(
            request, metadata=_metadata(token), timeout=STREAM_TIMEOUT_S
        )
        return Stream(call)


class Stream:
    """A GenerateStream call read one message at a time."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def next(self) -> pb.GenerateStreamResponse | None:
        """The next message, None at the end of the stream."""
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise error_from_aio(exc) from None
        return None if message is grpc.aio.EOF else message

    def close(self) -> None:
        self._call.cancel()  # a no-op once the call ended


async def _unary(method: Any, request: Any, token: str, timeout: float) -> Any:
    try:
        return await method(request, metadata=_metadata(token), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise error_from_aio(exc) from None


def error_from_aio(error: grpc.aio.AioRpcError) -> ForgelineError:
    """The ForgelineError a failed call stands for: the service's google.rpc.Status when it
    sent one (with its details), else its code and message."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            return from_status(status_pb2.Status.FromString(value))
    code = error.code()
    return from_status(status_pb2.Status(code=code.value[0], message=error.details() or code.name))


def _metadata(token: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("x-request-id", uuid.uuid4().hex[:16])]
    if token and len(token) <= MAX_TOKEN_CHARS and token.isascii() and token.isprintable():
        found.append(("authorization", token))
    return found
