"""Which network addresses a server-side fetch may reach: the guard against request forgery.

A URL a client sends is fetched from inside the server's network: unchecked, a client reads the
cloud metadata service (169.254.169.254), a database on loopback or any host of the private
network through it. So every address a host name resolves to is checked after DNS (no spelling
of 127.0.0.1 slips through: ``2130706433``, ``::ffff:127.0.0.1``, ``localhost``), the connection
then goes to exactly the checked address (a second, different DNS answer cannot swap it: DNS
rebinding), and each redirect is a new connection, checked again. Loopback, link-local, private,
multicast, unspecified, reserved and other non-public addresses are refused unless the operator
opens them (``FORGELINE_HTTP_ALLOW``: IP addresses, CIDR networks or exact host names).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from forgeline.errors import InvalidArgument, PermissionDenied, excerpt

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "FORGELINE_HTTP_ALLOW"


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions: networks (an address is a /32 or /128) and exact host names."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Entries as the setting holds them; ValueError naming the first that is neither an
        address, a network nor a host name."""
        networks, hosts = [], set()
        for entry in entries:
            text = entry.strip().lower()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            labels = text.rstrip(".").split(".")
            if not text or "/" in text or not all(_is_label(label) for label in labels):
                raise ValueError(f"{entry!r} is not an IP address, a CIDR network or a host name")
            hosts.add(text.rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        candidates = {address, _embedded(address)} - {None}
        return any(a in n for a in candidates for n in self.networks if a.version == n.version)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not fetched by default ("loopback", "private", ...); None if public.
    An IPv4 address inside an IPv6 one (IPv4-mapped, 6to4) is judged as the IPv4 address."""
    inner = _embedded(address)
    if inner is not None and (why := refusal(inner)):
        return why
    for why, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if hit:
            return why
    return None


def checked_addresses(
    host: str, port: int, allow: AllowList, field_path: str
) -> list[tuple[int, tuple]]:
    """(family, sockaddr) of every address ``host`` resolves to, once all are checked.

    PermissionDenied (reason ADDRESS_REFUSED, naming ``field_path`` and the host) when any of them
    is refused: a name that resolves to a public and a private address is refused whole.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:  # an IDNA label over 63 characters, say
        raise InvalidArgument.for_field(
            field_path, f"{excerpt(host)} is not a valid host name"
        ) from exc
    out = []
    for family, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].partition("%")[0])
        why = refusal(address)
        if why and not allow.allows(host, address):
            raise PermissionDenied(
                f"{field_path}: host {excerpt(host)} resolves to {address}, a {why} address; "
                f"the server does not connect to loopback, link-local, private or other "
                f"non-public addresses unless the operator allows them ({ALLOW_SETTING})",
                reason="ADDRESS_REFUSED",
                metadata={"field": field_path, "host": host[:253], "address": str(address)},
            )
        out.append((family, sockaddr))
    return out


def connect(
    host: str,
    port: int,
    allow: AllowList,
    field_path: str,
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A TCP connection to ``host`` made only to addresses ``checked_addresses`` let through
    (the first that answers), so what was checked is what is connected to."""
    error: OSError | None = None
    for family, sockaddr in checked_addresses(host, port, allow, field_path):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if isinstance(timeout, int | float):  # not http.client's "no timeout given"
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"{host!r} resolves to no address")


def _embedded(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour
    return None


def _is_label(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
