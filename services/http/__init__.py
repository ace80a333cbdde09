"""The HTTP face: an ASGI app (FastAPI on uvicorn) in front of the serving service's gRPC API.

REST for classifiers (``POST /v1/deployments/{name}:predict``), the OpenAI-compatible
``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions`` (server-sent events when
streamed), ``/healthz`` and FastAPI's own ``/docs`` and ``/openapi.json``. It holds no model: every
answer comes from the serving service over gRPC, with the caller's bearer token forwarded.
"""

# The port `forgeline http serve` listens on unless told otherwise (DESIGN.md's table).
DEFAULT_PORT = 8080
