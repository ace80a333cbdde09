"""The HTTP face as a service like the others (`forgeline serve http`, `forgeline up http`,
`forgeline status`, `forgeline down`), and the top-level `forgeline generate` and `forgeline
chat` against a tiny llama deployed in a real serving service."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.raynodes import free_port
from forgeline.server import ServiceThread
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from tests.conftest import REPO, ServiceProcess, make_settings
from tests.fixtures import ready_client, started
from tests.tiny_llm import tiny_llama_folder

USAGE = re.compile(r"^(\w+): (\d+) prompt \+ (\d+) generated tokens$")


@pytest.fixture(scope="module")
def safety_service(tmp_path_factory):
    yield from started(tmp_path_factory, "safety")


@pytest.fixture(scope="module")
def serving(tmp_path_factory, safety_service) -> Iterator[Client]:
    """A serving service with the tiny llama (it has a chat template) deployed as "tiny"."""
    home, work = tmp_path_factory.mktemp("chat-home"), tmp_path_factory.mktemp("chat-work")
    store = ArtifactStore(home / "artifacts")
    try:
        record = store.commit_dir(
            tiny_llama_folder(work / "llama"),
            kind="model",
            name="tiny-llama",
            metadata={"format": "hf", "task": "causal_lm"},
            lineage=Lineage(),
        )
    finally:
        store.close()
    settings = make_settings(home, [home], addresses={"safety": safety_service.service.address})
    service = ServiceThread("serving", settings).start()
    try:
        for client in ready_client(service.address):
            operation = client.serving.DeployModel(
                pb.DeployModelRequest(name="tiny", model_id=record.id)
            )
            client.wait(operation, pb.DeployModelResponse, timeout=120)
            yield client
    finally:
        service.stop()


def cli(
    addresses: dict[str, str], *args: str, stdin: str = "", home: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "FORGELINE_ADDRESSES": json.dumps(addresses), "COLUMNS": "200"}
    if home is not None:
        env["FORGELINE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "forgeline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def answers(stdout: str) -> list[tuple[str, int]]:
    """(answer text, prompt tokens) of each streamed answer a command printed."""
    found, text = [], []
    for line in stdout.splitlines():
        usage = USAGE.match(line)
        if usage:
            found.append(("\n".join(text), int(usage[2])))
            text = []
        else:
            text.append(line)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie left for whoever reaps the stack's orphans counts as stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_serve_http_runs_the_face_on_its_port(serving, tmp_path):
    """`forgeline serve http` runs uvicorn (not a gRPC server): /healthz answers 200 while the
    serving service at the settings' address answers."""
    face = ServiceProcess(
        "http", tmp_path, [tmp_path], env={"FORGELINE_ADDRESSES": json.dumps(
            {"serving": serving.address}
        )},
    ).start()  # fmt: skip
    try:
        reply = httpx.get(f"http://{face.address}/healthz", timeout=30)
        assert reply.status_code == 200 and reply.json()["status"] == "SERVING"
        models = httpx.get(f"http://{face.address}/v1/models", timeout=30).json()
        assert "tiny" in {m["id"] for m in models["data"]}
    finally:
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (exit -15).
        assert face.terminate() in (0, -signal.SIGTERM)


def test_up_status_down_with_the_http_face(serving, tmp_path):
    """`forgeline up http` starts the face (and the gateway) on the configured ports and waits
    for it; `forgeline status` reports it SERVING through GET /healthz; `forgeline down` stops
    it."""
    http_port, gateway_port = free_port(), free_port()
    addresses = {
        "serving": serving.address,
        "http": f"127.0.0.1:{http_port}",
        "gateway": f"127.0.0.1:{gateway_port}",
    }
    home = tmp_path / "home"
    up = cli(addresses, "up", "http", home=home)
    assert up.returncode == 0, up.stderr
    members = json.loads((home / "stack.json").read_text())
    pids = {m["name"]: m["pid"] for m in members}
    assert set(pids) == {"http", "gateway"}
    try:
        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=30).status_code == 200
        status = cli(addresses, "status", "--json", home=home)
        rows = {r["service"]: r for r in json.loads(status.stdout)}
        assert rows["http"] == {
            "service": "http",
            "address": f"127.0.0.1:{http_port}",
            "serving": True,
        }
        assert rows["gateway"]["serving"] is True
    finally:
        down = cli(addresses, "down", home=home)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in pids.values())
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", http_port)) != 0, "the face still listens"
    # The face stopped: status says so.
    status = cli(addresses, "status", "--json", home=home)
    assert {r["service"]: r["serving"] for r in json.loads(status.stdout)}["http"] is False


def test_generate_is_deploy_generate(serving):
    expected = serving.serving.Generate(
        pb.GenerateRequest(
            deployment="tiny", prompt="w1 w2 w3", decoding=tpb.DecodingOptions(max_new_tokens=6)
        )
    ).text
    shown = cli(
        {"serving": serving.address}, "generate", "tiny", "w1 w2 w3", "--max-new-tokens", "6"
    )
    assert shown.returncode == 0, shown.stderr
    assert answers(shown.stdout) == [(expected, 3)]


def test_chat_keeps_the_conversation(serving):
    """Two turns piped in: the second request carries the first turn (its prompt is the whole
    conversation, as Generate with the three turns counts it, and its answer is that one, not
    the single-turn answer)."""
    decoding = tpb.DecodingOptions(max_new_tokens=6)
    shown = cli(
        {"serving": serving.address},
        "chat",
        "tiny",
        "--max-new-tokens",
        "6",
        stdin="w1 w2\nw3 w4\n/exit\nnever sent\n",
    )
    assert shown.returncode == 0, shown.stderr
    (first, first_tokens), (second, second_tokens) = answers(shown.stdout)

    def ask(*turns: tuple[str, str]) -> pb.GenerateResponse:
        messages = [pb.ChatTurn(role=r, content=c) for r, c in turns]
        return serving.serving.Generate(
            pb.GenerateRequest(deployment="tiny", messages=messages, decoding=decoding)
        )

    one = ask(("user", "w1 w2"))
    assert (first, first_tokens) == (one.text, one.usage.prompt_tokens)
    both = ask(("user", "w1 w2"), ("assistant", one.text), ("user", "w3 w4"))
    alone = ask(("user", "w3 w4"))
    assert (second, second_tokens) == (both.text, both.usage.prompt_tokens)
    assert second_tokens > alone.usage.prompt_tokens  # the first turn was sent again
    # EOF ends a chat as /exit does.
    ended = cli({"serving": serving.address}, "chat", "tiny", "--max-new-tokens", "2", stdin="w1\n")
    assert ended.returncode == 0 and len(answers(ended.stdout)) == 1


def test_up_waits_for_the_face_to_listen_not_for_its_upstream(tmp_path):
    """With no serving service answering, the face still starts (its /healthz says 503 and
    status reports it not serving): the stack waits for it to listen, not for its upstream."""
    http_port, gateway_port = free_port(), free_port()
    addresses = {
        "serving": f"127.0.0.1:{free_port()}",
        "http": f"127.0.0.1:{http_port}",
        "gateway": f"127.0.0.1:{gateway_port}",
    }
    home = tmp_path / "home"
    up = cli(addresses, "up", "http", home=home)
    try:
        assert up.returncode == 0, up.stderr
        reply = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=30)
        assert reply.status_code == 503
        status = cli(addresses, "status", "--json", home=home)
        assert {r["service"]: r["serving"] for r in json.loads(status.stdout)}["http"] is False
    finally:
        cli(addresses, "down", home=home)


def test_a_pipeline_step_cannot_name_the_http_face(tmp_path):
    """Its address is configured like a service's, yet it has no gRPC methods to call."""
    from forgeline.gateway.service import known_services

    settings = make_settings(tmp_path, [tmp_path], addresses={"http": "127.0.0.1:8080"})
    names = known_services(settings)
    assert "http" not in names and "serving" in names


def test_forgeline_up_starts_the_face_and_an_embedded_stack_leaves_it_out():
    from forgeline.gateway.stack import members

    detached = members(None, detach=True)
    assert "http" in detached and detached[-1] == "http"  # after serving, its upstream
    assert "http" not in members(None, detach=False) and "serving" in members(None, False)
    assert members(["http", "serving"], detach=False) == ["serving", "http"]


def test_the_compose_health_check_of_the_face(serving, tmp_path):
    """deploy/compose.yaml's check for the HTTP face: 0 when /healthz is 200, non-zero on its
    503 (no serving behind it) and with nothing listening."""
    import yaml

    from forgeline.services.http.server import HttpThread

    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    code = compose["services"]["http"]["healthcheck"]["test"][3]

    def check(port: int) -> int:
        return subprocess.run([sys.executable, "-c", code, str(port)], timeout=60).returncode

    settings = make_settings(tmp_path, [tmp_path])
    for upstream, healthy in ((serving.address, True), (f"127.0.0.1:{free_port()}", False)):
        face = HttpThread(settings, upstream).start()
        try:
            assert (check(face.port) == 0) is healthy, upstream
        finally:
            face.stop()
    assert check(free_port()) != 0
