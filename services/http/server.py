"""Running the HTTP face: uvicorn on the settings' host, TLS from the same FORGELINE_TLS_*
settings as the gRPC services, a graceful stop, and an embedded variant for tests."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from forgeline import logging as flog
from forgeline.server import ServiceThread
from forgeline.services.http import DEFAULT_PORT
from forgeline.services.http.upstream import Upstream
from forgeline.settings import Settings

log = flog.get_logger(__name__)


async def serve(
    settings: Settings,
    *,
    port: int | None = None,
    upstream: str | None = None,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serves the app until SIGTERM/SIGINT (uvicorn's own handlers) or ``stop`` is set.
    ``port`` 0 picks a free one, handed to ``on_ready``; ``upstream`` overrides the serving
    service's address."""
    import uvicorn

    from forgeline.services.http.app import create_app

    if settings.tls_cert and not settings.tls_key:
        raise ValueError("FORGELINE_TLS_CERT is set but FORGELINE_TLS_KEY is not")
    chosen = (settings.port or DEFAULT_PORT) if port is None else port
    listener = _listen(settings.host, chosen)
    bound = listener.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, Upstream(settings, upstream)),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.grace_seconds) or 1,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        ssl_ca_certs=settings.tls_client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    watcher = asyncio.create_task(_stop_when(stop, server)) if stop is not None else None
    started = asyncio.create_task(_ready_when(server, bound, settings, on_ready))
    try:
        await server.serve(sockets=[listener])
    finally:
        for task in (watcher, started):
            if task is not None:
                task.cancel()
        listener.close()
    log.info("stopped")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket bound before uvicorn starts, so port 0 gives a port to report. Made
    from getaddrinfo's answer: a socket with proto IPPROTO_TCP is one asyncio sets TCP_NODELAY
    on for each connection (with proto 0, Nagle's algorithm and delayed ACKs add ~40 ms to
    every keep-alive response)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(2048)
    return listener


async def _stop_when(stop: asyncio.Event, server) -> None:
    await stop.wait()
    server.should_exit = True


async def _ready_when(server, port: int, settings: Settings, on_ready) -> None:
    while not server.started:
        await asyncio.sleep(0.01)
    log.info(
        "serving", service="http", address=f"{settings.host}:{port}", tls=bool(settings.tls_cert)
    )
    if on_ready is not None:
        on_ready(port)


class HttpThread(ServiceThread):
    """The HTTP face embedded in this process on a free loopback port (tests, benchmarks)."""

    def __init__(self, settings: Settings, upstream: str | None = None) -> None:
        super().__init__("http", settings)
        self.upstream = upstream

    async def _serve(self, stop: asyncio.Event) -> None:
        await serve(
            self.settings, port=0, upstream=self.upstream, on_ready=self._on_ready, stop=stop
        )

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"
