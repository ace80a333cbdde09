"""Waiting for long work in tests: for as long as it makes progress, never for a fixed time.

How long a training run takes depends on the machine and on what else it is doing (a loaded
2-core CI runner is several times slower than an idle one); how long it may stay silent does
not. These helpers follow an operation's events and fail only once none has come for
``stall_s`` seconds, saying what the operation was doing: its state, its last message, its
last step and how long it has been silent. A run that keeps reporting steps is never cut off,
so the tests that use them for all their long waits carry no fixed pytest-timeout either.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from forgeline.client import Client
from forgeline.errors import ForgelineError
from forgeline.v1 import common_pb2, event_service_pb2

M = TypeVar("M", bound=Message)
# A run may be silent this long (loading a model, tokenizing, starting Ray workers, scoring
# the held-out rows on a loaded machine) before a test calls it stalled.
STALL_S = 300.0
_WINDOW_S = 30.0  # how long one StreamEvents call may stay open before the silence is checked


def follow(
    client: Client, operation: str, *, stall_s: float = STALL_S, after_sequence: int = 0
) -> Iterator[event_service_pb2.Event]:
    """The operation's events as they come, until it is done; AssertionError once none has
    come for ``stall_s`` seconds."""
    seen, quiet_since = after_sequence, time.monotonic()
    last_step, last_message = 0, ""
    while True:
        silent = time.monotonic() - quiet_since
        request = event_service_pb2.StreamEventsRequest(operation=operation, after_sequence=seen)
        try:
            window = max(1.0, min(_WINDOW_S, stall_s - silent))
            for response in client.events.StreamEvents(request, timeout=window):
                event = response.event
                seen, quiet_since = event.sequence, time.monotonic()
                if event.HasField("metrics") and event.metrics.points:
                    last_step = max(last_step, max(p.step for p in event.metrics.points))
                if event.HasField("progress"):
                    last_message = event.progress.message
                yield event
            return  # the stream ends with the operation
        except ForgelineError as exc:
            if exc.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        silent = time.monotonic() - quiet_since
        if silent >= stall_s:
            found = client.operations.GetOperation(
                operations_pb2.GetOperationRequest(name=operation)
            )
            meta = client.metadata(found)
            raise AssertionError(
                f"{operation} made no progress for {silent:.0f}s (a test allows {stall_s:.0f}s "
                f"of silence): state {common_pb2.OperationState.Name(meta.state)}, progress "
                f"{meta.progress:.2f}, last message {last_message or meta.message!r}, last "
                f"metric step {last_step}, attempt {meta.attempt}"
            )


def wait_done(
    client: Client,
    operation: operations_pb2.Operation,
    response_type: type[M],
    *,
    stall_s: float = STALL_S,
) -> M:
    """The operation's response (its error raised as a ForgelineError), waiting for as long as
    it makes progress; AssertionError with its last state once it stalls for ``stall_s``."""
    for _ in follow(client, operation.name, stall_s=stall_s):
        pass
    done = client.operations.GetOperation(operations_pb2.GetOperationRequest(name=operation.name))
    return client.wait(done, response_type, timeout=stall_s)


def wait_for_step(client: Client, operation: str, step: int, *, stall_s: float = STALL_S) -> None:
    """Returns once the operation has recorded a metric at ``step`` or later; AssertionError
    when it ends before, or stalls for ``stall_s`` seconds."""
    for event in follow(client, operation, stall_s=stall_s):
        if event.HasField("metrics") and any(p.step >= step for p in event.metrics.points):
            return
    raise AssertionError(f"{operation} ended before step {step}")
