"""tests.waiting, the suite's way to wait for long work (issue 18, item 23): it waits for as long
as an operation makes progress and, once it stalls, fails saying what it was doing, instead of
giving up after a fixed time. Shown on the kernel's real Operations and Event services over
loopback gRPC and a real SQLite store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2_grpc

from forgeline.client import Client
from forgeline.operations import (
    EventServicer,
    OperationContext,
    OperationRunner,
    OperationsServicer,
    OperationStore,
)
from forgeline.v1 import common_pb2, event_service_pb2_grpc
from forgeline.v1 import training_service_pb2 as pb
from tests.waiting import follow, wait_for_step

METHOD = "forgeline.v1.TrainingService/TrainModel"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Client, OperationStore]]:
    """The Operations and Event services over one store, on a loopback port."""
    store = OperationStore(tmp_path / "operations.db")
    runner = OperationRunner(store, workers=1)
    started, stop, port = threading.Event(), threading.Event(), []

    async def main() -> None:
        server = grpc.aio.server()
        event_service_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(store), server)
        operations_pb2_grpc.add_OperationsServicer_to_server(
            OperationsServicer(runner, {METHOD: pb.TrainModelResponse}), server
        )
        port.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        with Client(f"127.0.0.1:{port[0]}") as client:
            yield client, store
    finally:
        stop.set()
        thread.join(30)
        runner.stop()
        store.close()


def test_a_silent_operation_fails_the_wait_with_what_it_was_doing(served):
    client, store = served
    row = store.create(METHOD, pb.TrainModelRequest(), "")
    ctx = OperationContext(store, row.name, threading.Event(), threading.Event())
    ctx.progress(0.25, "loading the model")
    ctx.metrics({"loss": 1.0}, step=7)
    started = time.monotonic()
    with pytest.raises(AssertionError) as caught:
        wait_for_step(client, row.name, 8, stall_s=2)
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "made no progress for" in message and "OPERATION_STATE_PENDING" in message
    assert "'loading the model'" in message and "last metric step 7" in message


def test_an_operation_that_keeps_reporting_is_followed_to_its_end(served):
    client, store = served
    row = store.create(METHOD, pb.TrainModelRequest(), "")
    ctx = OperationContext(store, row.name, threading.Event(), threading.Event())

    def train() -> None:  # longer in all than the stall limit, never silent that long
        for step in range(1, 13):
            ctx.metrics({"loss": 1.0 / step}, step=step)
            time.sleep(0.25)
        store.finish(row.name, common_pb2.OperationState.OPERATION_STATE_SUCCEEDED, message="")

    worker = threading.Thread(target=train, daemon=True)
    worker.start()
    steps = [
        p.step
        for e in follow(client, row.name, stall_s=2)
        if e.HasField("metrics")
        for p in e.metrics.points
    ]
    worker.join(30)
    assert steps == list(range(1, 13))
