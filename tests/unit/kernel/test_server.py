"""forgeline.server: the bootstrap every service runs, over a real in-process data service.

Auth, health, reflection and message limits share one server (token "s3cret", 64 KiB messages);
TLS gets its own with a self-signed certificate for 127.0.0.1 made for the test.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import ResourceExhausted, Unauthenticated, Unavailable
from forgeline.v1 import data_service_pb2 as pb
from forgeline.v1 import plugin_service_pb2
from tests.conftest import ServiceThread, make_settings

TOKEN = "s3cret"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[ServiceThread]:
    home = tmp_path_factory.mktemp("server-home")
    settings = make_settings(home, [home], auth_token=TOKEN, max_message_bytes=LIMIT)
    running = ServiceThread("data", settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def authorized(service) -> Iterator[Client]:
    with Client(service.address, token=TOKEN) as client:
        client.wait_ready()
        yield client


def upload_request(name: str, rows: list[dict]) -> Iterator[pb.UploadRecordsRequest]:
    yield pb.UploadRecordsRequest(header=pb.UploadHeader(name=name))
    yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=[struct(r) for r in rows]))
    yield pb.UploadRecordsRequest(commit=pb.UploadCommit())


# --- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", "s3cret-and-more"])
def test_a_call_without_the_right_token_is_unauthenticated(service, authorized, token):
    with Client(service.address, token=token) as client:
        with pytest.raises(Unauthenticated) as caught:
            client.data.ListDatasets(pb.ListDatasetsRequest())
        assert caught.value.reason == "BAD_TOKEN"
        with pytest.raises(Unauthenticated):
            list(client.data.ReadRows(pb.ReadRowsRequest(dataset_id="x")))
        with pytest.raises(Unauthenticated):
            client.data.UploadRecords(upload_request("sneaky", [{"text": "x"}]))
    assert authorized.data.ListDatasets(pb.ListDatasetsRequest()).datasets == []


def test_health_checks_need_no_token(service):
    with grpc.insecure_channel(service.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="forgeline.v1.DataService"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_with_the_token_calls_work(authorized):
    dataset = authorized.data.UploadRecords(
        upload_request("authorized", [{"text": "hello"}, {"text": "world"}])
    ).dataset
    assert dataset.num_rows == 2
    got = authorized.data.GetDataset(pb.GetDatasetRequest(dataset_id="authorized")).dataset
    assert got.artifact.id == dataset.artifact.id
    plugins = authorized.plugins.ListPlugins(plugin_service_pb2.ListPluginsRequest(kind="loaders"))
    assert "csv" in [p.name for p in plugins.plugins]


# --- reflection --------------------------------------------------------------------------------


def test_reflection_lists_and_describes_every_service(authorized):
    database = ProtoReflectionDescriptorDatabase(authorized.channel)
    services = set(database.get_services())
    assert {
        "forgeline.v1.DataService",
        "google.longrunning.Operations",
        "forgeline.v1.EventService",
        "forgeline.v1.PluginService",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    pool = DescriptorPool(database)
    data = pool.FindServiceByName("forgeline.v1.DataService")
    assert data.methods_by_name["CleanDataset"].output_type.full_name == (
        "google.longrunning.Operation"
    )
    events = pool.FindServiceByName("forgeline.v1.EventService")
    assert "StreamEvents" in events.methods_by_name


# --- limits ------------------------------------------------------------------------------------


def test_a_message_over_the_limit_is_resource_exhausted(authorized):
    rows = [{"text": "x" * 1024} for _ in range(200)]  # one ~200 KiB message
    with pytest.raises(ResourceExhausted):
        authorized.data.UploadRecords(upload_request("too-big", rows))
    names = [d.name for d in authorized.data.ListDatasets(pb.ListDatasetsRequest()).datasets]
    assert "too-big" not in names
    small = authorized.data.UploadRecords(upload_request("fits", rows[:20])).dataset
    assert small.num_rows == 20


# --- TLS ---------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Certificate and key for 127.0.0.1 and localhost: cryptography if installed, else openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        _with_cryptography(cert, key)
    elif shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key),
             "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    else:
        pytest.skip("needs the cryptography package or the openssl command to make a certificate")
    return cert, key


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_tls_serves_clients_that_trust_the_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    settings = make_settings(tmp_path / "home", [tmp_path], tls_cert=cert, tls_key=key)
    service = ServiceThread("data", settings).start()
    try:
        with Client(service.address, root_certificates=cert.read_bytes()) as client:
            client.wait_ready()
            reply = client.data.ListDatasets(pb.ListDatasetsRequest())
            assert list(reply.datasets) == []
        with Client(service.address, timeout=5) as plaintext:
            with pytest.raises(Unavailable):
                plaintext.data.ListDatasets(pb.ListDatasetsRequest())
    finally:
        service.stop()


def test_mutual_tls_requires_a_client_certificate_the_server_trusts(tmp_path):
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    cert, key = self_signed(tmp_path / "server")
    client_cert, client_key = self_signed(tmp_path / "client")
    settings = make_settings(
        tmp_path / "home", [tmp_path], tls_cert=cert, tls_key=key, tls_client_ca=client_cert
    )
    service = ServiceThread("data", settings).start()
    try:
        with Client(
            service.address,
            root_certificates=cert.read_bytes(),
            client_certificate=client_cert.read_bytes(),
            client_key=client_key.read_bytes(),
        ) as client:
            assert list(client.data.ListDatasets(pb.ListDatasetsRequest()).datasets) == []
        with Client(service.address, root_certificates=cert.read_bytes(), timeout=5) as anonymous:
            with pytest.raises(Unavailable):
                anonymous.data.ListDatasets(pb.ListDatasetsRequest())
    finally:
        service.stop()
