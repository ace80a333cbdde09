"""Calling any service's long-running method by name, with no stub generated for it.

The request is built from a step's `with` mapping (proto JSON) through the message class of the
service's own descriptors (from its catalog) and sent with the step's idempotency key as
`request_id`. The Operation it returns is polled until done: its events stored so far over the
service's EventService, then its state. The response comes back as a dict in the proto JSON
mapping (snake_case names, defaults included), which later steps' references and gates read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from google.longrunning import operations_pb2
from google.protobuf import json_format, message_factory

from forgeline.client import Client
from forgeline.errors import (
    DeadlineExceeded,
    ForgelineError,
    InvalidArgument,
    Unavailable,
    from_status,
)
from forgeline.gateway.catalog import ServiceCatalog
from forgeline.logging import get_logger
from forgeline.v1 import common_pb2, event_service_pb2

T = TypeVar("T")
log = get_logger(__name__)


RETRY_FOR_S = 60.0  # default of the setting call_retry_seconds
FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0


def retrying(
    call: Callable[[], T],
    *,
    idempotent: bool,
    what: str,
    budget_s: float = RETRY_FOR_S,
    timeout_s: float | None = None,
    waiting: str = "",
) -> T:
    """``call()``, retried with exponential backoff for up to ``budget_s`` while it fails
    UNAVAILABLE (a service restarting, a dropped connection) or DEADLINE_EXCEEDED (a service
    too busy to answer in time), when it is safe to send twice. Every attempt carries its own
    deadline (``timeout_s``, the stub's timeout). The error that ends the retries says which
    call (``what``) was ``waiting`` for what, how long, and which gateway setting sets that:
    a bare "Deadline Exceeded" tells a user nothing."""
    started = time.monotonic()
    delay = FIRST_BACKOFF_S
    while True:
        try:
            return call()
        except (Unavailable, DeadlineExceeded) as exc:
            spent = time.monotonic() - started
            if not idempotent or spent + delay > budget_s:
                raise _explained(
                    exc, what, waiting, timeout_s, spent if idempotent else 0
                ) from None
            log.info("retrying", call=what, error=exc.message, backoff_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def _explained(
    error: ForgelineError, what: str, waiting: str, timeout_s: float | None, retried_s: float
) -> ForgelineError:
    """``error`` (the last attempt's) told as a step's message: the call first, then the fact."""
    retried = f"retried for {retried_s:.0f} s: call_retry_seconds" if retried_s >= 1 else ""
    if isinstance(error, DeadlineExceeded):
        within = f"within {timeout_s:g} s" if timeout_s is not None else "within its deadline"
        settings = "; ".join(filter(None, ["gateway setting call_timeout_seconds", retried]))
        return DeadlineExceeded(
            f"{what}: no answer {within}{f' while waiting for {waiting}' if waiting else ''} "
            f"({settings})",
            reason="CALL_TIMED_OUT",
            metadata={"call": what, "setting": "call_timeout_seconds"},
        )
    return Unavailable(
        f"{what}: {error.message}{f' ({retried})' if retried else ''}",
        reason=error.reason,
        metadata={**error.metadata, "call": what},
    )


class RemoteService:
    """One service, reached through ``client``, described by ``catalog``. Every call has a
    deadline (``call_timeout``); the idempotent ones (all but a submit without a request id)
    are retried with backoff for ``retry_for`` seconds while the service is unreachable or
    does not answer in time."""

    def __init__(
        self,
        catalog: ServiceCatalog,
        client: Client,
        call_timeout: float = 30.0,
        retry_for: float = RETRY_FOR_S,
    ) -> None:
        self.catalog, self.client = catalog, client
        self.call_timeout, self.retry_for = call_timeout, retry_for

    def _retrying(
        self,
        method: str,
        waiting: str,
        call: Callable[[], T],
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> T:
        return retrying(
            call,
            idempotent=idempotent,
            what=f"{self.name}.{method} at {self.address}",
            budget_s=self.retry_for,
            timeout_s=self.call_timeout if timeout is None else timeout,
            waiting=waiting,
        )

    @property
    def name(self) -> str:
        return self.catalog.name

    @property
    def address(self) -> str:
        return self.catalog.address

    def request(self, method: str, fields: dict[str, Any], request_id: str = ""):
        """The request message of ``method`` from proto-JSON ``fields``."""
        descriptor = self.catalog.service.methods_by_name[method].input_type
        message = message_factory.GetMessageClass(descriptor)()
        try:
            json_format.ParseDict(fields, message)
        except json_format.ParseError as exc:
            raise InvalidArgument(f"{self.name}.{method}: {exc}", reason="STEP_REQUEST") from None
        if request_id and "request_id" in descriptor.fields_by_name:
            message.request_id = request_id
        return message

    def submit(self, method: str, fields: dict[str, Any], request_id: str) -> str:
        """Starts ``method``; returns the operation's name. The same ``request_id`` twice
        returns the same operation (the services keep AIP-155), so a retry never runs a step
        twice."""
        message = self.request(method, fields, request_id)
        call = self.client.channel.unary_unary(
            f"/{self.catalog.service.full_name}/{method}",
            request_serializer=type(message).SerializeToString,
            response_deserializer=operations_pb2.Operation.FromString,
        )
        # With a request id the service answers a repeat with the same operation (AIP-155).
        idempotent = bool(getattr(message, "request_id", ""))
        operation = self._retrying(
            method,
            "the service to accept the request",
            lambda: call(message, timeout=self.call_timeout),
            idempotent=idempotent,
        )
        return operation.name

    def events(
        self,
        operation: str,
        on_event: Callable[[event_service_pb2.Event], None],
        after_sequence: int = 0,
    ) -> int:
        """Forwards the events stored so far with sequence > ``after_sequence``; returns the last
        sequence seen. Called in a polling loop, so no stream outlives its deadline."""
        last = after_sequence

        def read() -> int:
            nonlocal last
            request = event_service_pb2.StreamEventsRequest(
                operation=operation, after_sequence=last, no_follow=True
            )
            for response in self.client.events.StreamEvents(request, timeout=self.call_timeout):
                on_event(response.event)
                last = max(last, response.event.sequence)
            return last

        # Resumes after the last event it saw.
        return self._retrying("StreamEvents", f"the events of {operation}", read)

    def get(self, operation: str) -> operations_pb2.Operation:
        request = operations_pb2.GetOperationRequest(name=operation)
        return self._retrying(
            "GetOperation",
            f"the state of {operation}",
            lambda: self.client.operations.GetOperation(request, timeout=self.call_timeout),
        )

    def wait(self, operation: str, timeout: float) -> operations_pb2.Operation:
        """The operation once done, or as it is after ``timeout`` seconds."""
        request = operations_pb2.WaitOperationRequest(name=operation)
        request.timeout.FromMilliseconds(int(timeout * 1000))
        return self._retrying(
            "WaitOperation",
            f"the state of {operation}",
            lambda: self.client.operations.WaitOperation(
                request, timeout=timeout + self.call_timeout
            ),
            timeout=timeout + self.call_timeout,
        )

    def result(self, method: str, operation: operations_pb2.Operation) -> dict[str, Any]:
        """The response of a done operation as proto JSON; its error raised."""
        if not operation.done:
            raise Unavailable(f"{operation.name} on {self.name} is not done")
        if operation.HasField("error"):
            raise from_status(operation.error)
        message = message_factory.GetMessageClass(self.catalog.response_type(method))()
        message.ParseFromString(operation.response.value)
        return to_dict(message)

    def metadata(self, operation: operations_pb2.Operation) -> common_pb2.OperationMetadata:
        out = common_pb2.OperationMetadata()
        operation.metadata.Unpack(out)
        return out

    def cancel(self, operation: str) -> None:
        request = operations_pb2.CancelOperationRequest(name=operation)
        self._retrying(
            "CancelOperation",
            f"the service to cancel {operation}",
            lambda: self.client.operations.CancelOperation(request, timeout=self.call_timeout),
        )


def to_dict(message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
