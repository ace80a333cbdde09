"""The HTTP face: an ASGI app (FastAPI on uvicorn) in front of the serving service's gRPC API.

REST for classifiers (``POST /v1/deployments/{name}:predict``), the OpenAI-compatible
``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions`` (server-sent events when
streamed), ``/healthz`` and FastAPI's own ``/docs`` and ``/openapi.json``. It holds no model: every
answer comes from the serving service over gRPC, with the caller's bearer token forwarded.
"""

from forgeline.service_spec import ServiceSpec

# The port `forgeline serve http` listens on unless told otherwise (DESIGN.md's table).
DEFAULT_PORT = 8080

# Not a gRPC server: `forgeline serve http` and `forgeline up` run its own serve() (uvicorn),
# and the stack and `forgeline status` see it up when GET /healthz answers.
SPEC = ServiceSpec(
    default_port=DEFAULT_PORT, serve="forgeline.services.http.server:serve", health="http"
)
