"""The one error hierarchy. Each class knows its gRPC status code and an UPPER_SNAKE reason.

Raise these where the fact is known, with the fact in the message. The server interceptor
(forgeline.server) turns them into google.rpc.Status with ErrorInfo and, for validation errors,
BadRequest field violations; the client (forgeline.client) maps them back by reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "forgeline.dev"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. "cleaners[1].config.threshold") and why."""

    field: str
    description: str


class ForgelineError(Exception):
    """Base of every error forgeline raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = dict(metadata or {})
        self.violations = list(violations or [])

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ForgelineError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field_path: str, description: str, **kwargs) -> InvalidArgument:
        """An error about one field; the message names it."""
        return cls(
            f"{field_path}: {description}",
            violations=[FieldViolation(field_path, description)],
            **kwargs,
        )


@dataclass
class Violations:
    """Collects every field violation of a request so all are reported at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def extend(self, violations: list[FieldViolation]) -> None:
        self.items.extend(violations)

    def raise_if_any(self, reason: str = "INVALID_ARGUMENT") -> None:
        if self.items:
            message = "; ".join(f"{v.field}: {v.description}" for v in self.items)
            raise InvalidArgument(message, reason=reason, violations=self.items)


class NotFound(ForgelineError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(ForgelineError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(ForgelineError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Aborted(ForgelineError):
    """A concurrent change won: retry on the new state."""

    code = grpc.StatusCode.ABORTED
    reason = "ABORTED"


class PermissionDenied(ForgelineError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(ForgelineError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class ResourceExhausted(ForgelineError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class Cancelled(ForgelineError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class Unavailable(ForgelineError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DataLoss(ForgelineError):
    code = grpc.StatusCode.DATA_LOSS
    reason = "DATA_LOSS"


class Internal(ForgelineError):
    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"


ERROR_CLASSES: dict[grpc.StatusCode, type[ForgelineError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Cancelled,
        Unavailable,
        DataLoss,
        Internal,
    )
}


def to_status(error: ForgelineError) -> status_pb2.Status:
    """google.rpc.Status with ErrorInfo (reason, domain, metadata) and BadRequest violations."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    status.details.add().Pack(info)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad)
    return status


def from_status(status: status_pb2.Status) -> ForgelineError:
    """The ForgelineError a google.rpc.Status stands for (the client side of to_status)."""
    code = _CODES_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    cls = ERROR_CLASSES.get(code, ForgelineError)
    reason, metadata, violations = None, {}, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    error = cls(status.message, reason=reason, metadata=metadata, violations=violations)
    if cls is ForgelineError:
        error.code = code
    return error


_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def cause_line(text: str, default: str) -> str:
    """The line of an error's text a client should see: the last one naming an exception
    ("ValueError: ..."), else the last line, else ``default``; never the traceback."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next(
        (line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", line)),
        lines[-1] if lines else default,
    )
