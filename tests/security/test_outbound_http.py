"""The HTTP loader fetches what a client names from inside the server's network: it must refuse
loopback, link-local, private and other non-public addresses (after DNS, on every redirect, and
connect to the very address it checked) unless the operator allows them, and a port where no
HTTP server answers is a precise UNAVAILABLE naming the URL, never INTERNAL."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pydantic import ValidationError

from forgeline import outbound
from forgeline.client import Client
from forgeline.contracts.loaders import LoadSource
from forgeline.errors import PermissionDenied, Unavailable
from forgeline.plugins.loaders.http import HttpLoader
from forgeline.settings import Settings
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings


class Site:
    """A tiny web server on a loopback address that counts the requests it got."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str = "") -> None:
        self.hits: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                site.hits.append(self.path)
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                body = b"<html><body><p>internal secret</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.close()


def load(url: str, allow: tuple[str, ...] = (), **config):
    return HttpLoader(HttpLoader.Config(**config)).load(LoadSource(url=url, http_allow=allow))


def refused(url: str, **kwargs) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        load(url, timeout_seconds=5, **kwargs)
    error = caught.value
    assert error.reason == "ADDRESS_REFUSED"
    assert error.metadata["field"] == "source" and error.message.startswith("source: ")
    assert "FORGELINE_HTTP_ALLOW" in error.message
    return error


def test_a_loopback_server_is_refused_and_never_contacted(site):
    port = site.port
    for url in (
        site.url,
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",  # 127.0.0.1 as one number: caught after resolution
        f"http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        f"http://[::1]:{port}/",
    ):
        error = refused(url)
        assert error.metadata["host"] in url and "loopback" in error.message
    assert site.hits == []


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("[fe80::1]", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("[fd00::1]", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved"),
        ("[2002:7f00:1::]", "loopback"),  # 6to4 around 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused_before_connecting(host, why):
    error = refused(f"http://{host}/latest/meta-data/")
    assert f"a {why} address" in error.message
    assert error.metadata["host"] == host.strip("[]")


def test_the_operator_allow_list_opens_hosts_and_networks(site):
    for allow in (("127.0.0.1",), ("127.0.0.0/8",), ("localhost",)):
        host = "localhost" if allow == ("localhost",) else "127.0.0.1"
        table = load(f"http://{host}:{site.port}/", allow)
        assert table.column("text").to_pylist() == ["internal secret"]
    refused(site.url, allow=("10.0.0.0/8", "example.com"))  # others stay refused
    with pytest.raises(ValidationError, match="http_allow"):
        Settings(http_allow="10.0.0.0/8, not a host!")
    assert Settings(http_allow="10.0.0.0/8,fd00::/8, intranet.example").http_allow == [
        "10.0.0.0/8",
        "fd00::/8",
        "intranet.example",
    ]


def test_every_redirect_is_checked_again():
    inner = Site("127.0.0.2")  # loopback too, but not on the allow-list
    outer = Site("127.0.0.1", redirect_to=inner.url)
    try:
        error = refused(outer.url, allow=("127.0.0.1/32",))
        assert error.metadata["host"] == "127.0.0.2"
        assert outer.hits == ["/"] and inner.hits == []
    finally:
        outer.close()
        inner.close()


@contextmanager
def rebinding_dns(name: str, answers: list[str]) -> Iterator[list[str]]:
    """``name`` resolves to each of ``answers`` in turn (a DNS server rebinding it)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return real(address, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield asked
    finally:
        socket.getaddrinfo = real


def test_the_connection_goes_to_the_address_that_was_checked(site):
    """DNS rebinding: the first answer passes the check; a second lookup would answer an address
    that is refused. The loader must connect to the first, not look the name up again."""
    other = Site("127.0.0.2")
    try:
        with rebinding_dns("rebind.test", ["127.0.0.1", "127.0.0.2"]) as asked:
            table = load(f"http://rebind.test:{site.port}/", ("127.0.0.1",))
        assert table.column("text").to_pylist() == ["internal secret"]
        assert asked == ["127.0.0.1"] and site.hits == ["/"] and other.hits == []
    finally:
        other.close()


def test_refused_through_the_data_service(client, site):
    """The client sees PERMISSION_DENIED with the reason, the field and the host; no request
    reaches the server."""
    for url in (site.url, "http://169.254.169.254/latest/meta-data/"):
        op = client.data.IngestDataset(pb.IngestDatasetRequest(source=url))
        with pytest.raises(PermissionDenied) as caught:
            client.wait(op, pb.IngestDatasetResponse)
        assert caught.value.reason == "ADDRESS_REFUSED"
        assert caught.value.metadata["field"] == "source"
        assert caught.value.metadata["host"] in url
    assert site.hits == []


# --- item 10: a port where no HTTP server answers -----------------------------------------------


class RawTcp:
    """A TCP server on loopback that answers every connection with ``reply`` and hangs up."""

    def __init__(self, reply: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"\x00\x01garbage without a status line", b""],
    ids=["ssh banner", "binary garbage", "hang up"],
)
def test_a_port_without_an_http_server_is_unavailable_naming_the_url(reply):
    raw = RawTcp(reply)
    try:
        with pytest.raises(Unavailable) as caught:
            load(raw.url, ("127.0.0.1",), timeout_seconds=10)
        assert caught.value.reason == "FETCH_FAILED" and raw.url in caught.value.message
    finally:
        raw.close()


def test_a_non_http_port_through_the_data_service(tmp_path):
    raw = RawTcp(b"\x00\x01garbage without a status line")
    settings = make_settings(tmp_path / "home", [tmp_path], http_allow=["127.0.0.1"])
    service = ServiceThread("data", settings).start()
    try:
        with Client(service.address) as client:
            op = client.data.IngestDataset(pb.IngestDatasetRequest(source=raw.url))
            with pytest.raises(Unavailable) as caught:
                client.wait(op, pb.IngestDatasetResponse)
        assert caught.value.reason == "FETCH_FAILED" and raw.url in caught.value.message
    finally:
        service.stop()
        raw.close()


def test_refusal_reasons_of_the_kernel_check():
    import ipaddress

    def why(text: str) -> str | None:
        return outbound.refusal(ipaddress.ip_address(text))

    assert why("93.184.216.34") is None and why("2606:4700::1111") is None
    assert why("127.8.9.10") == "loopback" and why("::ffff:10.0.0.1") == "private"
    allow = outbound.AllowList.parse(["10.0.0.0/8", "Intranet.Example."])
    assert allow.allows("x", ipaddress.ip_address("::ffff:10.2.3.4"))
    assert allow.allows("intranet.example", ipaddress.ip_address("192.168.0.1"))
    assert not allow.allows("x", ipaddress.ip_address("192.168.0.1"))
