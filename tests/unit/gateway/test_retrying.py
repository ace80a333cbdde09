"""Idempotent calls to a service that is not there yet are retried with backoff; the others are
not sent twice. Against a real gRPC server that comes up late on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from forgeline.client import Client
from forgeline.errors import Unavailable
from forgeline.gateway.remote import retrying


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def late_server():
    """A health server on a free port that starts listening 0.8 s from now."""
    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)

    def listen() -> None:  # binding the port is what makes it reachable: do both late
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()

    timer = threading.Timer(0.8, listen)
    timer.start()
    yield port
    timer.cancel()
    server.stop(0)


def test_an_idempotent_call_waits_out_a_late_service(late_server):
    calls = []
    with Client(f"127.0.0.1:{late_server}", timeout=1) as client:

        def check():
            calls.append(time.monotonic())
            return client.health.Check(health_pb2.HealthCheckRequest(), timeout=1)

        reply = retrying(check, idempotent=True, what="Check", budget_s=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert len(calls) >= 2
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(later >= earlier * 0.9 for earlier, later in zip(gaps, gaps[1:], strict=False))


def test_a_call_that_is_not_idempotent_is_sent_once(late_server):
    calls = []
    with Client(f"127.0.0.1:{late_server}", timeout=1) as client:

        def check():
            calls.append(1)
            return client.health.Check(health_pb2.HealthCheckRequest(), timeout=1)

        with pytest.raises(Unavailable):
            retrying(check, idempotent=False, what="Submit", budget_s=10)
    assert len(calls) == 1


def test_retries_stop_when_the_budget_is_spent():
    with Client(f"127.0.0.1:{free_port()}", timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            retrying(
                lambda: client.health.Check(health_pb2.HealthCheckRequest(), timeout=1),
                idempotent=True,
                what="Check",
                budget_s=1.0,
            )
        assert time.monotonic() - started < 3
