"""Declared long-running methods: a servicer's MethodSpecs checked against its service's proto
and turned into the handlers that start their operations.

A servicer names each long-running method once (``MethodSpec("CleanDataset", run=...)``); the
proto already says the rest: the full method name, the request type, that it returns a
google.longrunning.Operation, and (in the ``google.longrunning.operation_info`` option) the
message the operation's ``response`` holds. Reading them from there leaves nothing to repeat and
nothing to get out of step, and a declaration the proto contradicts stops the service at start,
not at its first call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.longrunning import operations_pb2
from google.longrunning import operations_proto_pb2 as lro_options
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from forgeline.errors import FailedPrecondition
from forgeline.operations import LongRunningMethod, MethodSpec, OperationRunner, to_operation

OPERATION = operations_pb2.Operation.DESCRIPTOR.full_name  # google.longrunning.Operation
Handler = Callable[[Message, Any], Awaitable[operations_pb2.Operation]]


def service_descriptor(full_name: str) -> ServiceDescriptor:
    """The proto service of that name, from the descriptors its generated module registered."""
    try:
        return descriptor_pool.Default().FindServiceByName(full_name)
    except KeyError:
        raise _misdeclared(
            full_name,
            [f"no proto service {full_name} is loaded (import its generated _pb2 module)"],
        ) from None


def resolve_methods(
    service: ServiceDescriptor, specs: Sequence[MethodSpec], servicer: object | None = None
) -> list[LongRunningMethod]:
    """The declared methods with their full names and message types from ``service``.

    Every problem at once, as FailedPrecondition (reason SERVICE_MISDECLARED): a name the service
    lacks or declared twice, a method that does not return a google.longrunning.Operation or
    names no response type, a method that returns one but is not declared, and a declared method
    that ``servicer`` also handles itself (the kernel makes that handler)."""
    problems: list[str] = []
    resolved: list[LongRunningMethod] = []
    declared: set[str] = set()
    for spec in specs:
        if spec.name in declared:
            problems.append(f"{spec.name} is declared twice")
            continue
        declared.add(spec.name)
        method = service.methods_by_name.get(spec.name)
        if method is None:
            known = ", ".join(sorted(m.name for m in service.methods if _returns_operation(m)))
            problems.append(
                f"{spec.name!r} is declared but the service has no such method "
                f"(its long-running methods: {known or 'none'})"
            )
            continue
        response, problem = _response_type(method)
        own = _own_handler(servicer, spec.name)
        if own is not None:
            problems.append(
                f"{spec.name} is declared and also handled by {own.__qualname__}.{spec.name}: "
                "remove that handler, the kernel makes it"
            )
        if problem is not None:
            problems.append(problem)
            continue
        resolved.append(
            LongRunningMethod(
                method=f"{service.full_name}/{method.name}",
                request_type=message_factory.GetMessageClass(method.input_type),
                response_type=response,
                run=spec.run,
                validate=spec.validate,
                resumable=spec.resumable,
            )
        )
    problems += [
        f"{m.name} returns {OPERATION} but is not declared: add MethodSpec({m.name!r}, run=...) "
        "to the servicer's long-running methods"
        for m in service.methods
        if _returns_operation(m) and m.name not in declared
    ]
    if problems:
        raise _misdeclared(service.full_name, problems)
    return resolved


def start_handler(runner: OperationRunner, method: LongRunningMethod) -> Handler:
    """The gRPC handler of a long-running method: starts its operation (the request's
    ``request_id``, where it has one, makes a retry return the same operation) and answers
    with it at once."""
    has_request_id = "request_id" in method.request_type.DESCRIPTOR.fields_by_name

    async def start(request: Message, context: Any) -> operations_pb2.Operation:
        request_id = request.request_id if has_request_id else ""
        row = await runner.start(method.method, request, request_id)
        return to_operation(row, method.response_type)

    start.__name__ = start.__qualname__ = method.method.rsplit("/", 1)[1]
    return start


def install_handlers(
    servicer: object, runner: OperationRunner, methods: Sequence[LongRunningMethod]
) -> None:
    """Gives ``servicer`` the handler of each method, before its add_*_to_server reads them."""
    for method in methods:
        handler = start_handler(runner, method)
        setattr(servicer, handler.__name__, handler)


def _returns_operation(method: MethodDescriptor) -> bool:
    return method.output_type.full_name == OPERATION


def _response_type(method: MethodDescriptor) -> tuple[type[Message] | None, str | None]:
    """The message class the proto names as the operation's response, or why there is none."""
    if method.client_streaming or method.server_streaming or not _returns_operation(method):
        shape = "a stream" if method.client_streaming or method.server_streaming else "unary"
        return None, (
            f"{method.name} is declared long-running but the proto says it is {shape} returning "
            f"{method.output_type.full_name}; a long-running method returns {OPERATION}"
        )
    info = method.GetOptions().Extensions[lro_options.operation_info]
    if not info.response_type:
        return None, (
            f"{method.name} names no response type: add option (google.longrunning."
            'operation_info) = {response_type: "..."} to it in the proto'
        )
    # AIP-151: a name without a package is in the method's own package.
    name = info.response_type
    package = method.containing_service.file.package
    candidates = [name, f"{package}.{name}"] if "." in name else [f"{package}.{name}"]
    pool = method.containing_service.file.pool
    for candidate in candidates:
        try:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(candidate)), None
        except KeyError:
            continue
    return None, f"{method.name}'s operation_info names response type {name!r}, which is not loaded"


def _own_handler(servicer: object | None, name: str) -> type | None:
    """The class of ``servicer`` that defines a handler called ``name`` itself (the generated
    base class's placeholder, which answers UNIMPLEMENTED, does not count)."""
    if servicer is None:
        return None
    for cls in type(servicer).__mro__:
        if name in vars(cls) and not cls.__module__.endswith("_pb2_grpc"):
            return cls
    return None


def _misdeclared(service: str, problems: list[str]) -> FailedPrecondition:
    return FailedPrecondition(
        f"service {service} is misdeclared: " + "; ".join(problems),
        reason="SERVICE_MISDECLARED",
        metadata={"service": service},
    )
