"""The one error hierarchy. Each class knows its gRPC status code and an UPPER_SNAKE reason.

Raise these where the fact is known, with the fact in the message. The server interceptor
(forgeline.server) turns them into google.rpc.Status with ErrorInfo and, for validation errors,
BadRequest field violations; the client (forgeline.client) maps them back by reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "forgeline.dev"


# The most characters of a client's own value an error message repeats back: a 5 MB id echoed
# whole made a reply exceed gRPC's metadata limit, turning NOT_FOUND into RESOURCE_EXHAUSTED.
EXCERPT_CHARS = 80


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long it was: how an error message
    quotes a value a client sent."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


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

    def under(self, parent: str) -> ForgelineError:
        """The same error raised about a message nested at ``parent`` (a TuneModelRequest's
        ``training``, say): every field path prefixed with it, the message naming them so."""
        if not self.violations:
            return self
        violations = [FieldViolation(f"{parent}.{v.field}", v.description) for v in self.violations]
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return type(self)(
            message, reason=self.reason, metadata=self.metadata, violations=violations
        )


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


class DeadlineExceeded(ForgelineError):
    """A call got no answer within its deadline (the message names the call and the setting
    that sets the deadline)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


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
        DeadlineExceeded,
        DataLoss,
        Internal,
    )
}


# What one error may take in a reply. gRPC refuses trailers over its metadata limit (8-16 KB),
# which fails the whole call as RESOURCE_EXHAUSTED, and a status travels twice: as grpc-message
# and, with its details, base64-encoded in grpc-status-details-bin.
STATUS_BYTES = 4096
# (message characters, characters of each detail, details of each sort): the first that fits
# STATUS_BYTES is sent; the last keeps the gist of an error quoting many long multi-byte values.
_STATUS_LIMITS = ((1024, 256, 20), (200, 48, 2), (100, 32, 0))


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class PathMask:
    """Rewrites a server's own directories out of text a client reads: a path under a data root
    is named relative to that root (as clients name files), a path under another of the
    server's directories starts with that directory's label (e.g. ``$FORGELINE_HOME/...``)."""

    ROOT_LABEL = "<data root>"

    def __init__(self, roots: Iterable[Path] = (), labelled: Mapping[str, Path] | None = None):
        self._labels: dict[str, str] = {}
        for label, folder in (labelled or {}).items():
            self._labels.update(dict.fromkeys(_spellings(folder), label))
        for root in roots:
            self._labels.update(dict.fromkeys(_spellings(root), ""))
        longest_first = sorted(self._labels, key=len, reverse=True)
        self._pattern = (
            re.compile(
                f"(?P<dir>{'|'.join(map(re.escape, longest_first))})"
                r"(?:(?P<slash>/)|(?![\w.\-]))"
            )
            if longest_first
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None or "/" not in text:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        label = self._labels[match["dir"]]
        if match["slash"]:
            return f"{label}/" if label else ""
        return label or self.ROOT_LABEL


def _spellings(folder: Path) -> set[str]:
    """How a directory may appear in a message: as configured and resolved (never "/")."""
    given = folder.expanduser()
    return {text.rstrip("/") for text in (str(given), str(given.resolve())) if text != "/"}


def to_status(
    error: ForgelineError, *, mask: Callable[[str], str] | None = None
) -> status_pb2.Status:
    """google.rpc.Status with ErrorInfo (reason, domain, metadata) and BadRequest violations,
    small enough for any reply's trailers however long the values the error quotes; ``mask``
    rewrites what could name the server's own directories."""
    for limits in _STATUS_LIMITS:
        status = _status(error, mask or str, *limits)
        if status.ByteSize() <= STATUS_BYTES:
            break
    return status


def _status(
    error: ForgelineError, mask: Callable[[str], str], message_chars: int, chars: int, items: int
) -> status_pb2.Status:
    def fit(text: object, limit: int = chars) -> str:
        return clip(mask(str(text)), limit)

    status = status_pb2.Status(code=error.code.value[0], message=fit(error.message, message_chars))
    metadata = {fit(k): fit(v) for k, v in list(error.metadata.items())[:items]}
    info = error_details_pb2.ErrorInfo(reason=fit(error.reason), domain=DOMAIN, metadata=metadata)
    status.details.add().Pack(info)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=fit(v.field), description=fit(v.description)
                )
                for v in error.violations[:items]
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
