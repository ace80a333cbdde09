"""The serving service as the HTTP face reaches it: one gRPC client, and the caller's bearer
token forwarded on every call (the face checks it first when auth is on; the service decides
when the face itself has none)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from grpc_health.v1 import health_pb2

from forgeline.client import Client
from forgeline.settings import Settings
from forgeline.v1 import serving_service_pb2 as pb

SERVING = "serving"
# A generation may take long on a CPU; the deadline still bounds a call that hangs.
GENERATE_TIMEOUT_S = 600.0
STREAM_TIMEOUT_S = 3600.0
HEALTH_TIMEOUT_S = 2.0
# gRPC metadata carries printable ASCII only; anything else (or a huge value) is not forwarded,
# and the service answers as for a call without a token.
MAX_TOKEN_CHARS = 4096


class Upstream:
    """Calls to the serving service at ``settings.address_for("serving")``."""

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        self.address = address or settings.address_for(SERVING)
        self._client = Client(
            self.address,
            timeout=settings.call_timeout_seconds,
            stream_timeout=STREAM_TIMEOUT_S,
            max_message_bytes=settings.max_message_bytes,
        )

    def close(self) -> None:
        self._client.close()

    def serving(self) -> bool:
        """Whether the serving service answers its health check SERVING."""
        try:
            reply = self._client.health.Check(
                health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S
            )
        except Exception:  # down, refused, timed out: not ready, whatever the cause
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def predict_batch(self, request: pb.PredictBatchRequest, token: str) -> pb.PredictBatchResponse:
        return self._client.serving.PredictBatch(request, metadata=_metadata(token))

    def deployments(self, token: str) -> list[pb.Deployment]:
        """Every deployment (all pages)."""
        found: list[pb.Deployment] = []
        page = ""
        while True:
            response = self._client.serving.ListDeployments(
                pb.ListDeploymentsRequest(page_size=500, page_token=page),
                metadata=_metadata(token),
            )
            found.extend(response.deployments)
            if not (page := response.next_page_token):
                return found

    def generate(self, request: pb.GenerateRequest, token: str) -> pb.GenerateResponse:
        return self._client.serving.Generate(
            request, metadata=_metadata(token), timeout=GENERATE_TIMEOUT_S
        )

    def generate_stream(
        self, request: pb.GenerateStreamRequest, token: str
    ) -> Iterator[pb.GenerateStreamResponse]:
        """The stream's messages; closing the iterator (and dropping it) cancels the call,
        which stops the generation in the service."""
        return self._client.serving.GenerateStream(request, metadata=_metadata(token))


def _metadata(token: str) -> list[tuple[str, Any]]:
    if not token or len(token) > MAX_TOKEN_CHARS or not (token.isascii() and token.isprintable()):
        return []
    return [("authorization", token)]
