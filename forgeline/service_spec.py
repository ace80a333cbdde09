"""What a service declares about itself, found through its ``forgeline.services`` entry point.

The kernel keeps no list of services: each entry point names a ServiceSpec (its default port,
the plugin kinds it loads, whether it keeps the audit log, and where its build() lives), so a new
service is one entry point and no kernel edit. The spec lives in a light module of the service's
package and names build() by string, so reading a port (the CLI, the gateway's address lookup)
never imports a service's heavy modules. Standard library only: settings imports this module.
"""

from __future__ import annotations

import functools
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # importlib.metadata costs ~20 ms: imported only when a lookup runs
    from importlib import metadata

SERVICES_GROUP = "forgeline.services"
# The port of a service that declares none (a third party's bare build function).
FALLBACK_PORT = 50059


@dataclass(frozen=True)
class ServiceSpec:
    """One service's declaration. Its name is its entry point's name (one source of truth)."""

    # "module:function" (imported only to serve) or the function; None for a service that
    # names its own ``serve`` instead.
    build: str | Callable[..., Any] | None = None
    default_port: int = FALLBACK_PORT
    # Plugin kinds to load before the service reports SERVING.
    plugin_kinds: tuple[str, ...] = ()
    # The service that keeps the audit log appends to it directly; every other service sends
    # its events there through an outbox.
    keeps_audit_log: bool = False
    # A service that is not a gRPC server (the HTTP face) names its own
    # ``async serve(settings, *, port, on_ready, stop)``: forgeline.server.serve() runs it instead
    # of the gRPC bootstrap, so `forgeline serve NAME` and `forgeline up` start it like any other.
    serve: str | Callable[..., Any] | None = None
    # How the stack and `forgeline status` see that it is up: "grpc" (grpc.health.v1) or "http"
    # (GET /healthz answers 200).
    health: Literal["grpc", "http"] = "grpc"

    def builder(self) -> Callable[..., Any]:
        """The build(kernel) function, imported now."""
        if self.build is None:
            raise TypeError("this service declares its own serve(), not a build(kernel)")
        return pkgutil.resolve_name(self.build) if isinstance(self.build, str) else self.build

    def server(self) -> Callable[..., Any] | None:
        """Its own serve() coroutine function, imported now; None for a gRPC service."""
        return pkgutil.resolve_name(self.serve) if isinstance(self.serve, str) else self.serve


def spec_of(entry_point: metadata.EntryPoint) -> ServiceSpec:
    """The spec an entry point names; an entry point naming a bare build function (as before
    specs existed) gets the defaults."""
    target = entry_point.load()
    if isinstance(target, ServiceSpec):
        return target
    if callable(target):
        return ServiceSpec(build=target)
    raise TypeError(
        f"entry point {entry_point.name!r} of {SERVICES_GROUP} names neither a ServiceSpec "
        "nor a build function"
    )


def service_entry_points(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> dict[str, metadata.EntryPoint]:
    """The services by name: those given, else those installed."""
    from importlib import metadata

    found = metadata.entry_points(group=SERVICES_GROUP) if entry_points is None else entry_points
    return {ep.name: ep for ep in found}


def service_spec(
    name: str, entry_points: Iterable[metadata.EntryPoint] | None = None
) -> ServiceSpec | None:
    """The named service's spec, None when no such service is installed."""
    if entry_points is None:
        return _installed_spec(name)
    entry_point = service_entry_points(entry_points).get(name)
    return None if entry_point is None else spec_of(entry_point)


@functools.cache
def _installed_spec(name: str) -> ServiceSpec | None:
    """Cached: address lookups happen on every gateway call, and installed packages do not
    change under a running process."""
    entry_point = service_entry_points().get(name)
    return None if entry_point is None else spec_of(entry_point)


def default_port(name: str, entry_points: Iterable[metadata.EntryPoint] | None = None) -> int:
    """The port the named service listens on unless told otherwise."""
    spec = service_spec(name, entry_points)
    return FALLBACK_PORT if spec is None else spec.default_port


def default_ports(entry_points: Iterable[metadata.EntryPoint] | None = None) -> dict[str, int]:
    """Every service's default port, by name."""
    return {name: default_port(name, entry_points) for name in service_entry_points(entry_points)}


def health_kind(name: str) -> str:
    """How the named installed service reports health: "grpc" (also for an unknown one, which
    may be a third party's gRPC service at a configured address) or "http"."""
    spec = service_spec(name)
    return "grpc" if spec is None else spec.health


def audit_log_service(entry_points: Iterable[metadata.EntryPoint] | None = None) -> str | None:
    """The service whose spec says it keeps the audit log (the first by name if several do),
    None when none is installed."""
    for name in sorted(service_entry_points(entry_points)):
        spec = service_spec(name, entry_points)
        if spec is not None and spec.keeps_audit_log:
            return name
    return None


def probe_http(address: str, *, tls: bool = False, timeout: float = 2.0) -> int | None:
    """The status code GET /healthz at ``address`` ("host:port") answers, None when nothing
    answers. How the stack and `forgeline status` see a service whose spec says health "http".
    Over TLS the certificate is not checked: the probe sends nothing and only reads a code."""
    import ssl
    import urllib.error
    import urllib.request

    scheme = "https" if tls else "http"
    context = ssl._create_unverified_context() if tls else None  # noqa: S323
    try:
        with urllib.request.urlopen(  # noqa: S310 (the scheme is fixed above)
            f"{scheme}://{address}/healthz", timeout=timeout, context=context
        ) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None
