"""serve(): the one bootstrap every forgeline service runs.

A grpc.aio server with: the service's own servicers (found through the ``forgeline.services``
entry point group), google.longrunning.Operations, forgeline.v1.EventService and PluginService,
grpc.health.v1.Health (NOT_SERVING until plugins are loaded and stores are open) and server
reflection; interceptors for errors (google.rpc.Status with ErrorInfo/BadRequest), request id and
logging, and optional bearer-token auth; optional TLS/mTLS; message size limits; and a graceful
stop on SIGTERM that lets in-flight calls finish and leaves running operations to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from forgeline import logging as flog
from forgeline.artifacts import ArtifactRecord, ArtifactStore
from forgeline.audit import AuditOutbox, service_outbox
from forgeline.errors import (
    ForgelineError,
    Internal,
    InvalidArgument,
    NotFound,
    PathMask,
    Unauthenticated,
    clip,
    to_status,
)
from forgeline.longrunning import install_handlers, resolve_methods, service_descriptor
from forgeline.operations import (
    EventServicer,
    LongRunningMethod,
    MethodSpec,
    OperationRunner,
    OperationsServicer,
    OperationStore,
)
from forgeline.paths import PathValidator
from forgeline.plugin_service import PluginServicer
from forgeline.registry import PluginRegistry
from forgeline.service_spec import ServiceSpec, service_entry_points, service_spec
from forgeline.settings import Settings
from forgeline.v1 import (
    event_service_pb2,
    event_service_pb2_grpc,
    plugin_service_pb2,
    plugin_service_pb2_grpc,
)

log = flog.get_logger(__name__)
_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)
LOG_CHARS = 2000  # a call's log line quotes at most this much of its error (ids can be megabytes)

AUDITED_KINDS = ("model", "adapter")


@dataclass
class Kernel:
    """What a service's build() gets: the process's settings, stores and registry, and the
    outbox its audit events leave through (None in the service that keeps the log)."""

    settings: Settings
    registry: PluginRegistry
    artifacts: ArtifactStore
    operations: OperationRunner
    paths: PathValidator
    audit: AuditOutbox | None = None

    @classmethod
    def open(cls, settings: Settings, service: str) -> Kernel:
        home = settings.home.expanduser()
        home.mkdir(parents=True, exist_ok=True)
        # The service that keeps the audit log appends to it directly; every other service
        # sends its events through an outbox.
        spec = service_spec(service)
        keeps_log = spec is not None and spec.keeps_audit_log
        audit = None if keeps_log else service_outbox(settings, service)
        return cls(
            settings=settings,
            registry=PluginRegistry(
                allow=settings.plugins_allow,
                required=settings.plugins_required,
                autoload=settings.plugins_autoload,
            ),
            artifacts=ArtifactStore(
                settings.artifacts_dir,
                on_commit=partial(_audit_commit, audit) if audit is not None else None,
                shared=settings.artifact_uri,
            ),
            operations=OperationRunner(
                OperationStore(settings.operations_db(service)),
                settings.worker_threads,
                mask=server_paths(settings),
            ),
            paths=PathValidator.from_settings(settings),
            audit=audit,
        )

    def close(self) -> None:
        self.operations.stop()
        self.operations.store.close()
        self.artifacts.close()
        if self.audit is not None:
            self.audit.close()


def _audit_commit(audit: AuditOutbox, record: ArtifactRecord) -> None:
    """Every model or adapter a service commits is recorded with its lineage (which operation,
    inputs and config made it; the request id names the pipeline run and step). A full outbox
    is logged: the model is already committed and its operation may still succeed."""
    if record.kind not in AUDITED_KINDS:
        return
    details = {
        "kind": record.kind,
        "name": record.name,
        "version": record.version,
        "sha256": record.sha256,
        "format": record.metadata.get("format", ""),
        "request_id": record.request_id,
        "lineage": asdict(record.lineage),
    }
    try:
        audit.record("model", record.id, details)
    except ForgelineError as exc:
        log.error("audit_not_recorded", kind="model", subject=record.id, error=str(exc))


@dataclass
class ServiceDefinition:
    """One gRPC service a process hosts, as returned by a service's build(kernel)."""

    full_name: str  # e.g. "forgeline.v1.DataService"
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    # Its long-running methods, each declared once: the kernel checks them against the proto,
    # registers them with the operation runner and makes their handlers.
    methods: list[MethodSpec] = field(default_factory=list)
    # Called once after the server stopped serving, before the kernel closes (flush state).
    on_close: Callable[[], None] | None = None


def service_builder(name: str) -> Callable[[Kernel], list[ServiceDefinition]]:
    """The build() function the spec of a ``forgeline.services`` entry point names."""
    return installed_spec(name).builder()


def installed_spec(name: str) -> ServiceSpec:
    """The named installed service's spec; NotFound names those installed."""
    spec = service_spec(name)
    if spec is None:
        known = ", ".join(installed_services()) or "none"
        raise NotFound(f"no service named {name!r}; installed: {known}", reason="SERVICE_NOT_FOUND")
    return spec


def installed_services() -> list[str]:
    return sorted(service_entry_points())


# --- interceptors --------------------------------------------------------------------------------


def _wrap_handler(
    handler: grpc.RpcMethodHandler,
    wrap_unary,
    wrap_stream,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behaviour is wrapped (unary responses vs. streamed ones) and,
    where given, its (de)serializers replaced."""
    kwargs = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": response_serializer or handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kwargs)


class _Undecodable:
    """A request whose bytes do not parse as the method's message. grpc answers a deserializer's
    exception with UNKNOWN and the parser's words before any handler runs; parsing to this
    instead lets the call's wrapper answer INVALID_ARGUMENT."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return _Undecodable(exc)

    return parse


def _unparsed(data: bytes) -> bytes:
    return data


def _passthrough(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """``serializer`` for what is not serialized yet (messages a handler writes with
    context.write); bytes pass as they are."""
    if serializer is None:
        return None
    return lambda message: message if isinstance(message, bytes) else serializer(message)


class _Call:
    """One RPC as CallInterceptor sees it: its request id, one log line, and every failure
    turned into a google.rpc.Status the client can read."""

    def __init__(
        self, method: str, request_id: str, handler: grpc.RpcMethodHandler, mask: PathMask
    ) -> None:
        self.method, self.request_id, self.mask = method, request_id, mask
        self._streaming_requests = handler.request_streaming
        self._serialize = handler.response_serializer

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` guarded, with requests that do not parse and responses that do not
        serialize failing inside the guard (grpc itself would answer UNKNOWN for both)."""
        return _wrap_handler(
            handler,
            self.unary,
            self.stream,
            _tolerant(handler.request_deserializer),
            _passthrough(handler.response_serializer),
        )

    def encode(self, response: Any) -> Any:
        return response if self._serialize is None else self._serialize(response)

    def requests(self, request: Any) -> Any:
        """The handler's request (or request stream) with undecodable messages refused."""
        if self._streaming_requests:
            return self._decoded_stream(request)
        return self._decoded(request)

    def _decoded(self, request: Any) -> Any:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(
                f"the request to {self.method} is not a valid protobuf message for it: "
                f"{request.error}",
                reason="MALFORMED_REQUEST",
            )
        return request

    async def _decoded_stream(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield self._decoded(request)

    @contextlib.asynccontextmanager
    async def guard(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        start = time.perf_counter()
        with flog.bound(request_id=self.request_id, rpc=self.method):
            try:
                yield
            except GeneratorExit:
                # asyncio closes a response stream whose client went away (cancelled, closed its
                # channel, or the server stopped): nobody is left to answer, and nothing crashed.
                log.info("rpc", code="CANCELLED", ms=_ms(start))
                raise
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except BaseException as exc:
                if _client_gone(context):
                    log.info("rpc", code="CANCELLED", ms=_ms(start))
                    raise
                _log_call(exc, start)
                await _abort(context, exc, self.method, self.mask)
            _log_call(None, start)

    def unary(self, behaviour):
        async def run(request, context):
            async with self.guard(context):
                return self.encode(await behaviour(self.requests(request), context))

        return run

    def stream(self, behaviour):
        if inspect.iscoroutinefunction(behaviour):
            # A handler that writes its responses with context.write (grpc's own Health/Watch)
            # is a coroutine, not an async generator; grpc tells them apart the same way.
            async def write(request, context):
                async with self.guard(context):
                    await behaviour(self.requests(request), context)

            return write

        async def run(request, context):
            async with self.guard(context):
                async for response in behaviour(self.requests(request), context):
                    yield self.encode(response)

        return run


async def _abort(
    context: grpc.aio.ServicerContext, exc: BaseException, method: str, mask: PathMask
) -> None:
    if isinstance(exc, ForgelineError):
        error = exc
    else:
        log.exception("rpc_crashed", exc_info=exc)
        error = Internal(f"internal error in {method}; the service log has the details")
    status = to_status(error, mask=mask)
    await context.abort(
        error.code,
        status.message,
        trailing_metadata=((rpc_status.GRPC_DETAILS_METADATA_KEY, status.SerializeToString()),),
    )


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Request id + one log line per call + any failure -> google.rpc.Status, for every RPC:
    undecodable requests are INVALID_ARGUMENT, unexpected exceptions a short INTERNAL, and the
    server's own directories never reach a client (``mask``)."""

    def __init__(self, mask: PathMask | None = None) -> None:
        self._mask = mask or PathMask()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        meta = dict(details.invocation_metadata or ())
        request_id = meta.get("x-request-id") or uuid.uuid4().hex[:16]
        return _Call(details.method, request_id, handler, self._mask).wrap(handler)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _client_gone(context: grpc.aio.ServicerContext) -> bool:
    """The client cancelled or hung up: nobody is left to send a status to."""
    try:
        return bool(context.cancelled())
    except Exception:
        return False


def _log_call(error: BaseException | None, start: float) -> None:
    if error is None:
        log.info("rpc", code="OK", ms=_ms(start))
    elif isinstance(error, ForgelineError):
        log.info("rpc", code=error.code.name, ms=_ms(start), error=clip(str(error), LOG_CHARS))
    else:
        text = clip(f"{type(error).__name__}: {error}", LOG_CHARS)
        log.info("rpc", code="INTERNAL", ms=_ms(start), error=text)


def bearer_accepted(authorization: str, token: str) -> bool:
    """Whether an 'authorization' value is 'Bearer <token>': compared in constant time. Every
    face of the platform (the gRPC servers, the HTTP face) checks a caller's token with this."""
    return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires 'authorization: Bearer <token>' on every call but health checks."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(_PUBLIC_PREFIXES):
            return handler
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if bearer_accepted(given, self._token):
            return handler
        error = Unauthenticated(
            "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'",
            reason="BAD_TOKEN",
        )

        def deny_unary(_behaviour):
            async def run(request, context):
                raise error

            return run

        def deny_stream(_behaviour):
            async def run(request, context):
                raise error
                yield  # pragma: no cover - makes this an async generator

            return run

        # A refused call's request is never parsed: bytes that do not parse are refused alike.
        return _wrap_handler(handler, deny_unary, deny_stream, request_deserializer=_unparsed)


# --- bootstrap ----------------------------------------------------------------------------------


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        return None
    if not settings.tls_key:
        raise ValueError("FORGELINE_TLS_CERT is set but FORGELINE_TLS_KEY is not")
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def server_paths(settings: Settings) -> PathMask:
    """What hides this process's directories in the errors it sends: paths under a data root
    are named relative to it, the rest of FORGELINE_HOME by that variable."""
    return PathMask(settings.roots, {"$FORGELINE_HOME": settings.home})


async def serve(
    name: str,
    settings: Settings,
    *,
    port: int | None = None,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Runs service ``name`` until SIGTERM/SIGINT (or ``stop`` is set). A service whose spec
    names its own serve() (not a gRPC server: the HTTP face) runs that instead, on the same
    port rules."""
    own = installed_spec(name).server()
    if own is not None:
        chosen = settings.port_for(name) if port is None else port
        await own(settings, port=chosen, on_ready=on_ready, stop=stop)
        return
    build = service_builder(name)
    kernel = Kernel.open(settings, name)
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    interceptors: list[grpc.aio.ServerInterceptor] = [CallInterceptor(server_paths(settings))]
    if settings.auth_token:
        interceptors.append(AuthInterceptor(settings.auth_token))
    server = grpc.aio.server(interceptors=interceptors, options=limits)

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    definitions, declared = _build(build, kernel)
    names = [d.full_name for d in definitions]
    response_types = {}
    for definition, methods in zip(definitions, declared, strict=True):
        install_handlers(definition.servicer, kernel.operations, methods)
        definition.add_to_server(definition.servicer, server)
        for method in methods:
            kernel.operations.register(method)
            response_types[method.method] = method.response_type
    operations_pb2_grpc.add_OperationsServicer_to_server(
        OperationsServicer(kernel.operations, response_types), server
    )
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        EventServicer(kernel.operations.store), server
    )
    plugin_service_pb2_grpc.add_PluginServiceServicer_to_server(
        PluginServicer(kernel.registry), server
    )
    served = [
        *names,
        operations_pb2.DESCRIPTOR.services_by_name["Operations"].full_name,
        event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
        plugin_service_pb2.DESCRIPTOR.services_by_name["PluginService"].full_name,
    ]
    reflection.enable_server_reflection([*served, reflection.SERVICE_NAME], server)
    for service in ["", *served]:
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    address = f"{settings.host}:{settings.port_for(name) if port is None else port}"
    credentials = _credentials(settings)
    bound_port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    await server.start()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    # Plugins load and unfinished operations resume before the service reports SERVING.
    for kind in sorted(set(installed_spec(name).plugin_kinds)):
        await asyncio.to_thread(kernel.registry.load_kind, kind)
    kernel.registry.check_required()
    resumed, failed = await asyncio.to_thread(kernel.operations.recover)
    for service in ["", *served]:
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        service=name,
        address=f"{settings.host}:{bound_port}",
        tls=credentials is not None,
        auth=bool(settings.auth_token),
        resumed=resumed,
        failed=failed,
    )
    if on_ready:
        on_ready(bound_port)

    await stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    await health.enter_graceful_shutdown()
    await server.stop(settings.grace_seconds)
    for definition in definitions:
        if definition.on_close is not None:
            await asyncio.to_thread(definition.on_close)
    await asyncio.to_thread(kernel.close)
    log.info("stopped")


def _build(
    build: Callable[[Kernel], list[ServiceDefinition]], kernel: Kernel
) -> tuple[list[ServiceDefinition], list[list[LongRunningMethod]]]:
    """The service's definitions and their long-running methods resolved against the protos.
    A misdeclared service stops here, before it listens, with the kernel closed again."""
    definitions: list[ServiceDefinition] = []
    try:
        definitions = build(kernel)
        declared = [
            resolve_methods(service_descriptor(d.full_name), d.methods, d.servicer)
            for d in definitions
        ]
    except BaseException:
        for definition in definitions:
            if definition.on_close is not None:
                definition.on_close()
        kernel.close()
        raise
    return definitions, declared


class ServiceThread:
    """A service embedded in this process: serve() on its own event loop in a thread, on a free
    loopback port (tests, benchmarks, notebooks)."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name, self.settings = name, settings
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self._serve(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self, stop: asyncio.Event) -> None:
        """What the thread runs until ``stop`` is set (a face of its own overrides it)."""
        await serve(self.name, self.settings, port=0, on_ready=self._on_ready, stop=stop)

    def _on_ready(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def start(self, timeout: float = 120.0) -> ServiceThread:
        """Starts it and waits until it listens (or raises what stopped it)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stops it gracefully and waits for the thread; a second call does nothing."""
        if self._loop and self._stop and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
