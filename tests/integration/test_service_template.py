"""examples/service-template installed as a real third-party package: `forgeline serve wordcount`
and `forgeline up wordcount` run it with no kernel edit, `forgeline status` knows it at its
default port, and a gRPC client calls it.

The package is built and installed with pip into a temporary folder (never into .venv) that
reaches the service process and the CLI only through PYTHONPATH, as in test_plugin_template.py;
this test process imports its generated stubs from there too, and forgets them at the end.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import InvalidArgument
from forgeline.v1 import plugin_service_pb2
from tests.conftest import REPO, ServiceProcess
from tests.fixtures import pip_install

TEMPLATE = REPO / "examples" / "service-template"
PACKAGE = "forgeline_service_example"
SERVICE = f"{PACKAGE}.v1.WordCountService"
DEFAULT_PORT = 50070


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The template built and installed with pip into a fresh folder; returns that folder."""
    target = pip_install(TEMPLATE, tmp_path_factory.mktemp("service-template"))
    assert (target / PACKAGE / "v1" / "wordcount_service_pb2_grpc.py").is_file()
    return target


@pytest.fixture(scope="module")
def pb(site) -> Iterator[ModuleType]:
    """The template's generated messages and stubs, imported from where pip put them. The
    folder leaves sys.path afterwards: other tests must not see a `wordcount` service."""
    sys.path.insert(0, str(site))
    try:
        from forgeline_service_example.v1 import wordcount_service_pb2, wordcount_service_pb2_grpc

        wordcount_service_pb2.stubs = wordcount_service_pb2_grpc
        yield wordcount_service_pb2
    finally:
        sys.path.remove(str(site))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def service(site, tmp_path_factory) -> Iterator[ServiceProcess]:
    """`python -m forgeline serve wordcount --port 0`, the command `forgeline up` runs for it."""
    home = tmp_path_factory.mktemp("service-template-home")
    process = ServiceProcess("wordcount", home, [home], env={"PYTHONPATH": str(site)}).start()
    yield process
    assert process.terminate() == 0  # SIGTERM is a graceful stop


@pytest.fixture(scope="module")
def client(service) -> Iterator[Client]:
    with Client(service.address) as c:
        c.wait_ready()
        yield c


def test_the_service_reports_serving_under_its_own_name(service, client):
    health = health_pb2_grpc.HealthStub(client.channel)
    for name in ("", SERVICE, "google.longrunning.Operations", "forgeline.v1.PluginService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


def test_count_words_runs_the_cleaners_it_names(client, pb):
    words = client.stub(pb.stubs.WordCountServiceStub)
    texts = ["Don't  PANIC!", "don't panic!", "a state-of-the-art  model"]
    reply = words.CountWords(pb.CountWordsRequest(texts=texts))
    assert list(reply.texts) == texts
    assert (list(reply.counts), reply.total) == ([2, 2, 3], 7)

    # dedup_exact (a built-in plugin, config as a Struct) drops the second spelling of a text.
    dedup = pb.Cleaner(name="dedup_exact", config=struct({}))
    deduplicated = words.CountWords(pb.CountWordsRequest(texts=texts, cleaners=[dedup]))
    assert list(deduplicated.texts) == [texts[0], texts[2]]
    assert (list(deduplicated.counts), deduplicated.total) == ([2, 3], 5)


def test_a_bad_cleaner_is_invalid_argument_naming_the_field(client, pb):
    words = client.stub(pb.stubs.WordCountServiceStub)
    with pytest.raises(InvalidArgument) as caught:
        words.CountWords(
            pb.CountWordsRequest(texts=["x"], cleaners=[pb.Cleaner(name="no_such_cleaner")])
        )
    assert [v.field for v in caught.value.violations] == ["cleaners[0].name"]


def test_build_vocabulary_is_a_long_running_operation_the_kernel_handles(client, pb):
    words = client.stub(pb.stubs.WordCountServiceStub)
    request = pb.BuildVocabularyRequest(
        texts=["the cat", "the dog", "The cat sat"], top_k=2, request_id="vocab-1"
    )
    op = words.BuildVocabulary(request)
    result = client.wait(op, pb.BuildVocabularyResponse, timeout=60)
    assert [(w.word, w.count) for w in result.words] == [("the", 3), ("cat", 2)]
    assert result.distinct_words == 4
    assert client.metadata(op).method == f"{SERVICE}/BuildVocabulary"
    # The same request_id returns the same operation, done, with its response (AIP-155).
    again = words.BuildVocabulary(request)
    assert again.name == op.name and again.done and again.response.Is(result.DESCRIPTOR)
    with pytest.raises(InvalidArgument) as caught:
        words.BuildVocabulary(pb.BuildVocabularyRequest(texts=["x"], top_k=-1))
    assert [v.field for v in caught.value.violations] == ["top_k"]


def test_list_plugins_lists_the_plugins_of_the_kinds_its_spec_declares(client):
    reply = client.plugins.ListPlugins(plugin_service_pb2.ListPluginsRequest(kind="cleaners"))
    found = {p.name: p for p in reply.plugins}
    assert {"dedup_exact", "normalize_text"} <= set(found), sorted(found)
    assert found["dedup_exact"].distribution == "forgeline"
    assert not [e for e in reply.load_errors if e.kind == "cleaners"]


def test_the_cli_knows_it_at_the_port_its_spec_declares(site, service, tmp_path):
    """`forgeline status` walks the installed services as `forgeline up` does; the template is
    one of them, at its spec's default port, with no kernel edit."""
    env = {**os.environ, "PYTHONPATH": str(site), "FORGELINE_HOME": str(tmp_path)}
    env.pop("FORGELINE_ADDRESSES", None)
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    rows = {row["service"]: row for row in json.loads(done.stdout)}
    assert rows["wordcount"]["address"] == f"127.0.0.1:{DEFAULT_PORT}", done.stdout

    env["FORGELINE_ADDRESSES"] = json.dumps({"wordcount": service.address})
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    rows = {row["service"]: row for row in json.loads(done.stdout)}
    assert rows["wordcount"] == {
        "service": "wordcount",
        "address": service.address,
        "serving": True,
    }


def test_the_committed_generated_code_matches_the_proto(tmp_path):
    """scripts/generate.py writes exactly what the template ships: nobody edited it by hand and
    nobody forgot to regenerate after editing the proto."""
    done = subprocess.run(
        [sys.executable, str(TEMPLATE / "scripts" / "generate.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    shipped = TEMPLATE / "src" / PACKAGE / "v1"
    made = tmp_path / PACKAGE / "v1"
    names = sorted(p.name for p in made.iterdir())
    assert names == [
        "wordcount_service_pb2.py",
        "wordcount_service_pb2.pyi",
        "wordcount_service_pb2_grpc.py",
    ]
    _, mismatch, errors = filecmp.cmpfiles(made, shipped, names, shallow=False)
    assert not mismatch and not errors, f"regenerate with scripts/generate.py: {mismatch + errors}"


def test_reflection_lists_the_service(client):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert SERVICE in {s.name for s in reply.list_services_response.service}


def test_an_unknown_service_name_is_refused_by_serve(site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(site), "FORGELINE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "serve", "wordcounts", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())  # the CLI wraps long lines
    assert "no service named 'wordcounts'" in output
    installed = output.split("installed:", 1)[1].replace(",", " ").split()
    assert "wordcount" in installed and "data" in installed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_forgeline_up_runs_it_and_down_stops_it(site, pb, tmp_path):
    """`forgeline up wordcount` starts the installed template (and the gateway) detached, where
    the settings say it listens; a client calls it there; `forgeline down` stops it."""
    address, gateway = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "FORGELINE_HOME": str(tmp_path),
        "FORGELINE_ADDRESSES": json.dumps({"wordcount": address}),
        "FORGELINE_GATEWAY": gateway,
    }

    def forgeline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "forgeline", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=180,
        )

    refused = forgeline("up", "wordcont")
    assert refused.returncode == 2
    assert "did you mean 'wordcount'" in " ".join(refused.stderr.split()).lower()

    started = forgeline("up", "wordcount")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        with Client(address) as c:
            c.wait_ready()
            words = c.stub(pb.stubs.WordCountServiceStub)
            assert words.CountWords(pb.CountWordsRequest(texts=["a b c"])).total == 3
        rows = {row["service"]: row for row in json.loads(forgeline("status", "--json").stdout)}
        assert rows["wordcount"]["serving"] and rows["gateway"]["serving"], rows
    finally:
        stopped = forgeline("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not (tmp_path / "stack.json").exists()
