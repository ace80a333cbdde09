"""Failures as HTTP answers: one table from gRPC status codes to HTTP statuses, and the two
error bodies the face speaks (its REST one and OpenAI's).

The table is Google's canonical mapping of google.rpc.Code to HTTP (the one grpc-gateway and
Google's JSON APIs use), so a safety block (PERMISSION_DENIED, reason INPUT_BLOCKED or
OUTPUT_BLOCKED) is 403 everywhere, with the rule that fired in the body.
"""

from __future__ import annotations

from typing import Any

import grpc

from forgeline.errors import ForgelineError

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
BLOCKED = frozenset({"INPUT_BLOCKED", "OUTPUT_BLOCKED"})
# OpenAI's error "type" for each HTTP status its API answers with.
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


def http_status(error: ForgelineError) -> int:
    return HTTP_STATUS.get(error.code, 500)


def field_of(error: ForgelineError) -> str | None:
    """The request field an error is about: its first violation's, else its metadata's."""
    if error.violations:
        return error.violations[0].field
    return error.metadata.get("field") or None


def rest_body(error: ForgelineError) -> dict[str, Any]:
    """The REST endpoints' error body: the status as both number and name, the reason, the
    field (INVALID_ARGUMENT), the rule (a safety block) and the error's metadata."""
    body: dict[str, Any] = {
        "code": http_status(error),
        "status": error.code.name,
        "reason": error.reason,
        "message": error.message,
    }
    if (field := field_of(error)) is not None:
        body["field"] = field
    if error.violations:
        body["violations"] = [
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    if error.reason in BLOCKED:
        body["rule"] = error.metadata.get("rule", "")
    if error.metadata:
        body["metadata"] = dict(error.metadata)
    return {"error": body}


def openai_body(error: ForgelineError, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: {"error": {"message", "type", "param", "code"}}; a safety block also
    names its rule (a key the official client carries through untouched)."""
    status = http_status(error)
    body: dict[str, Any] = {
        "message": error.message,
        "type": OPENAI_TYPES.get(status, "server_error" if status >= 500 else "api_error"),
        "param": param if param is not None else field_of(error),
        "code": error.reason.lower(),
    }
    if error.reason in BLOCKED:
        body["rule"] = error.metadata.get("rule", "")
    return {"error": body}
