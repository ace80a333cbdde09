"""The services as the HTTP face reaches them (the serving service for the API, the gateway for
the console): one asyncio gRPC channel each (grpc.aio, on the face's own event loop: no call
waits for a thread), and the caller's bearer token forwarded on every call (the face checks it
first when auth is on; the service decides when the face itself has none). Failures come back
as the ForgelineError the service's status stands for, its details (field violations, reason)
kept."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forgeline.errors import ForgelineError, from_status
from forgeline.settings import Settings
from forgeline.v1 import (
    event_service_pb2,
    event_service_pb2_grpc,
    pipeline_service_pb2,
    pipeline_service_pb2_grpc,
    serving_service_pb2_grpc,
)
from forgeline.v1 import serving_service_pb2 as pb

SERVING, GATEWAY = "serving", "gateway"
# A generation may take long on a CPU; the deadline still bounds a call that hangs.
GENERATE_TIMEOUT_S = 600.0
STREAM_TIMEOUT_S = 3600.0
HEALTH_TIMEOUT_S = 2.0
# gRPC metadata carries printable ASCII only; anything else (or a huge value) is not forwarded,
# and the service answers as for a call without a token.
MAX_TOKEN_CHARS = 4096
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class _Channel:
    """One service's asyncio channel, opened on the event loop of the first call (an asyncio
    channel belongs to one loop)."""

    def __init__(self, settings: Settings, service: str, address: str | None) -> None:
        self.address = address or settings.address_for(service)
        self._timeout = settings.call_timeout_seconds
        self._options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def serving(self) -> bool:
        """Whether the service answers its health check SERVING."""
        try:
            reply = await health_pb2_grpc.HealthStub(self.channel()).Check(
                health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S
            )
        except Exception:  # down, refused, timed out: not ready, whatever the cause
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


class Upstream(_Channel):
    """Calls to the serving service at ``settings.address_for("serving")``."""

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        super().__init__(settings, SERVING, address)
        self._made_for: grpc.aio.Channel | None = None

    def _stub(self) -> serving_service_pb2_grpc.ServingServiceStub:
        channel = self.channel()
        if self._made_for is not channel:  # made once per channel: the predict path is hot
            self._serving_stub = serving_service_pb2_grpc.ServingServiceStub(channel)
            self._made_for = channel
        return self._serving_stub

    async def predict_batch(
        self, request: pb.PredictBatchRequest, token: str
    ) -> pb.PredictBatchResponse:
        return await _unary(self._stub().PredictBatch, request, token, self._timeout)

    async def deployments(self, token: str) -> list[pb.Deployment]:
        """Every deployment (all pages)."""
        found: list[pb.Deployment] = []
        page = ""
        while True:
            response = await _unary(
                self._stub().ListDeployments,
                pb.ListDeploymentsRequest(page_size=500, page_token=page),
                token,
                self._timeout,
            )
            found.extend(response.deployments)
            if not (page := response.next_page_token):
                return found

    async def generate(self, request: pb.GenerateRequest, token: str) -> pb.GenerateResponse:
        return await _unary(self._stub().Generate, request, token, GENERATE_TIMEOUT_S)

    def generate_stream(self, request: pb.GenerateStreamRequest, token: str) -> Stream:
        """The stream's messages; cancelling it (``Stream.close``) stops the generation in the
        service."""
        call = self._stub().GenerateStream(
            request, metadata=_metadata(token), timeout=STREAM_TIMEOUT_S
        )
        return Stream(call)


class Gateway(_Channel):
    """Calls to the gateway (PipelineService, and its EventService for a run's events) at
    ``settings.address_for("gateway")``: what the web console shows and does."""

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        super().__init__(settings, GATEWAY, address)

    def _pipelines(self) -> pipeline_service_pb2_grpc.PipelineServiceStub:
        return pipeline_service_pb2_grpc.PipelineServiceStub(self.channel())

    async def runs(self, token: str, limit: int) -> list[pipeline_service_pb2.PipelineRun]:
        """The newest ``limit`` runs (the gateway lists newest first)."""
        found: list[pipeline_service_pb2.PipelineRun] = []
        page = ""
        while len(found) < limit:
            response = await _unary(
                self._pipelines().ListPipelineRuns,
                pipeline_service_pb2.ListPipelineRunsRequest(
                    page_size=min(500, limit - len(found)), page_token=page
                ),
                token,
                self._timeout,
            )
            found.extend(response.runs)
            if not (page := response.next_page_token):
                break
        return found[:limit]

    async def run(self, name: str, token: str) -> pipeline_service_pb2.PipelineRun:
        response = await _unary(
            self._pipelines().GetPipelineRun,
            pipeline_service_pb2.GetPipelineRunRequest(name=name),
            token,
            self._timeout,
        )
        return response.run

    async def cancel(self, name: str, token: str) -> pipeline_service_pb2.PipelineRun:
        response = await _unary(
            self._pipelines().CancelPipelineRun,
            pipeline_service_pb2.CancelPipelineRunRequest(name=name),
            token,
            self._timeout,
        )
        return response.run

    async def retry(self, name: str, token: str) -> str:
        """The new attempt's operation name."""
        operation = await _unary(
            self._pipelines().RetryPipelineRun,
            pipeline_service_pb2.RetryPipelineRunRequest(name=name),
            token,
            self._timeout,
        )
        return operation.name

    def watch_runs(self, token: str, limit: int) -> Stream:
        """Pages of the newest ``limit`` runs, the first at once and then one whenever they
        change, for as long as the caller reads (no deadline: a console left open)."""
        call = self._pipelines().WatchPipelineRuns(
            pipeline_service_pb2.WatchPipelineRunsRequest(page_size=min(limit, 500)),
            metadata=_metadata(token),
        )
        return Stream(call)

    def events(self, operation: str, after: int, token: str) -> Stream:
        """The run's events after sequence ``after``, following it until it is done."""
        call = event_service_pb2_grpc.EventServiceStub(self.channel()).StreamEvents(
            event_service_pb2.StreamEventsRequest(operation=operation, after_sequence=after),
            metadata=_metadata(token),
            timeout=STREAM_TIMEOUT_S,
        )
        return Stream(call)


class Stream:
    """A server-streaming call read one message at a time."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def next(self) -> Any:
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
