"""The HTTP face against a real serving service (and a safety service keeping its audit log), on
loopback: REST predict for a tiny classifier, the OpenAI-compatible API for a tiny llama driven
by the official ``openai`` package, errors and safety blocks as HTTP statuses, the bearer token
checked and forwarded, health and the OpenAPI page; plain HTTP (httpx) and ``curl``."""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.models import SEQUENCE_CLASSIFICATION
from forgeline.services.http.server import HttpThread
from forgeline.v1 import common_pb2
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from tests.conftest import ServiceThread, make_settings
from tests.fixtures import started
from tests.integration.serving.conftest import LABELS, tiny_classifier
from tests.integration.test_serving_generate import lora
from tests.tiny_llm import tiny_llama_folder

openai = pytest.importorskip("openai")

TOKEN = "http-face-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_PREDICT_TEXTS = 4
MAX_GENERATIONS = 2
BLOCK_SECRETS = """
input_filters:
  - name: no-secrets
    filter: {name: blocklist, config: {words: [password]}}
    action: block
    message: no passwords here
"""


def commit(store: ArtifactStore, folder: Path, name: str, metadata: dict) -> ArtifactRecord:
    return store.commit_dir(folder, kind="model", name=name, metadata=metadata, lineage=Lineage())


@pytest.fixture(scope="module")
def safety_service(tmp_path_factory):
    yield from started(tmp_path_factory, "safety")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, dict[str, ArtifactRecord]]:
    home, work = tmp_path_factory.mktemp("http-home"), tmp_path_factory.mktemp("http-work")
    classifier = tiny_classifier(work, seed=0)
    llama = tiny_llama_folder(work / "llama")
    long = shutil.copytree(llama, work / "long")
    config = json.loads((long / "config.json").read_text())
    (long / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    adapter = lora(llama, work / "lora-a", seed=1)
    store = ArtifactStore(home / "artifacts")
    try:
        records = {
            "clf": commit(
                store,
                classifier,
                "tiny-clf",
                {"format": "hf", "task": SEQUENCE_CLASSIFICATION, "labels": LABELS},
            ),
            "llama": commit(store, llama, "tiny-llama", {"format": "hf", "task": "causal_lm"}),
            "long": commit(store, long, "tiny-long", {"format": "hf", "task": "causal_lm"}),
        }
        records["lora-a"] = store.commit_dir(
            adapter,
            kind="adapter",
            name="lora-a",
            metadata={
                "format": "peft_adapter",
                "task": "causal_lm",
                "base_artifact_id": records["llama"].id,
            },
            lineage=Lineage(),
        )
        return home, records
    finally:
        store.close()


@pytest.fixture(scope="module")
def grpc_client(models, safety_service) -> Iterator[Client]:
    """The serving service, with auth on, and the deployments every test uses."""
    home, records = models
    settings = make_settings(
        home,
        [home],
        addresses={"safety": safety_service.service.address},
        auth_token=TOKEN,
        max_predict_texts=MAX_PREDICT_TEXTS,
        max_generations=MAX_GENERATIONS,
    )
    service = ServiceThread("serving", settings).start()
    try:
        with Client(service.address, token=TOKEN) as client:
            client.wait_ready()
            deploy(client, "clf", records["clf"].id)
            deploy(client, "guarded", records["clf"].id, policy=BLOCK_SECRETS)
            deploy(client, "llm", records["llama"].id, adapters={"a": records["lora-a"].id})
            deploy(client, "long", records["long"].id, max_new_tokens=4000)
            yield client
    finally:
        service.stop()


def deploy(client: Client, name: str, model_id: str, policy: str = "", **fields) -> pb.Deployment:
    source = common_pb2.PolicySource(yaml=policy) if policy else None
    operation = client.serving.DeployModel(
        pb.DeployModelRequest(name=name, model_id=model_id, policy=source, **fields)
    )
    return client.wait(operation, pb.DeployModelResponse, timeout=120).deployment


def face(tmp_path_factory, grpc_client: Client, **settings) -> Iterator[HttpThread]:
    home = tmp_path_factory.mktemp("face-home")
    thread = HttpThread(make_settings(home, [home], **settings), upstream=grpc_client.address)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def http(tmp_path_factory, grpc_client) -> Iterator[HttpThread]:
    """The HTTP face with auth on: the same token as the serving service."""
    yield from face(tmp_path_factory, grpc_client, auth_token=TOKEN, max_message_bytes=64 * 1024)


@pytest.fixture(scope="module")
def open_face(tmp_path_factory, grpc_client) -> Iterator[HttpThread]:
    """An HTTP face with auth off: whatever token a caller sends goes on to the service."""
    yield from face(tmp_path_factory, grpc_client)


@pytest.fixture(scope="module")
def llm(http) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{http.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def curl(*args: str) -> tuple[int, str]:
    """``curl`` on the command line: (HTTP status, body)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not on PATH")
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


# --- health, OpenAPI, REST predict -------------------------------------------------------------


def test_health_and_the_openapi_page(http, tmp_path_factory, grpc_client):
    assert httpx.get(f"{http.url}/healthz").json()["status"] == "SERVING"  # public, like gRPC's
    schema = httpx.get(f"{http.url}/openapi.json").json()
    assert {"/v1/deployments/{name}:predict", "/v1/chat/completions", "/v1/completions"} <= set(
        schema["paths"]
    )
    assert "swagger" in httpx.get(f"{http.url}/docs").text.lower()
    status, body = curl(f"{http.url}/healthz")
    assert status == 200 and json.loads(body)["upstream"] == {"serving": "SERVING"}
    # With its upstream gone, the face says it is not ready.
    home = tmp_path_factory.mktemp("orphan-home")
    orphan = HttpThread(make_settings(home, [home]), upstream="127.0.0.1:1").start()
    try:
        assert httpx.get(f"{orphan.url}/healthz").status_code == 503
        down = httpx.post(f"{orphan.url}/v1/deployments/clf:predict", json={"texts": ["x"]})
        assert down.status_code == 503 and down.json()["error"]["status"] == "UNAVAILABLE"
    finally:
        orphan.stop()


def test_predict_answers_like_grpc(http, grpc_client):
    texts = ["good food", "cold soup and a slow delivery"]
    answer = httpx.post(
        f"{http.url}/v1/deployments/clf:predict", json={"texts": texts}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    direct = grpc_client.serving.PredictBatch(pb.PredictBatchRequest(deployment="clf", texts=texts))
    for got, want in zip(results, direct.results, strict=True):
        prediction = got["prediction"]
        assert prediction["label"] == want.prediction.label in LABELS
        assert prediction["probabilities"] == pytest.approx(dict(want.prediction.probabilities))
    status, body = curl(
        "-X", "POST", f"{http.url}/v1/deployments/clf:predict",
        "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
        "-d", json.dumps({"texts": texts}),
    )  # fmt: skip
    assert status == 200 and json.loads(body)["results"] == results


def test_a_blocked_text_is_403_naming_the_rule(http):
    texts = ["good food", "my password is hunter2"]
    answer = httpx.post(
        f"{http.url}/v1/deployments/guarded:predict", json={"texts": texts}, headers=AUTH
    )
    assert answer.status_code == 403
    body = answer.json()
    assert body["error"]["rule"] == "no-secrets" and body["error"]["reason"] == "INPUT_BLOCKED"
    assert body["error"]["index"] == 1 and "hunter2" not in body["error"]["message"]
    assert "label" in body["results"][0]["prediction"] and "error" in body["results"][1]
    status, raw = curl(
        "-X", "POST", f"{http.url}/v1/deployments/guarded:predict",
        "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
        "-d", json.dumps({"texts": texts[1:]}),
    )  # fmt: skip
    assert status == 403 and json.loads(raw)["error"]["rule"] == "no-secrets"


def test_grpc_statuses_map_to_http_statuses(http):
    def post(path: str, payload: object, **kw) -> httpx.Response:
        return httpx.post(f"{http.url}{path}", json=payload, headers=AUTH, **kw)

    missing = post("/v1/deployments/nope:predict", {"texts": ["x"]})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    too_many = post("/v1/deployments/clf:predict", {"texts": ["x"] * (MAX_PREDICT_TEXTS + 1)})
    assert too_many.status_code == 400 and too_many.json()["error"]["field"] == "texts"
    adapter = post("/v1/deployments/clf:predict", {"texts": ["x"], "adapter": "zzz"})
    assert adapter.status_code == 400 and adapter.json()["error"]["field"] == "adapter"
    shape = post("/v1/deployments/clf:predict", {"text": "x"})
    assert shape.status_code == 400
    assert {v["field"] for v in shape.json()["error"]["violations"]} == {"texts", "text"}
    garbled = httpx.post(
        f"{http.url}/v1/chat/completions",
        content=b'{"model": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert garbled.status_code == 400 and garbled.json()["error"]["param"] == "body"
    extra = post("/v1/completions", {"model": "llm", "prompt": "w1", "bogus": 1})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "bogus"
    huge = post("/v1/deployments/clf:predict", {"texts": ["x" * 100_000]})
    assert huge.status_code == 413 and huge.json()["error"]["reason"] == "BODY_TOO_LARGE"
    status, body = curl(f"{http.url}/v1/nothing-here", "-H", f"Authorization: Bearer {TOKEN}")
    assert status == 404 and json.loads(body)["error"]["status"] == "NOT_FOUND"


def test_the_bearer_token_is_the_grpc_one_and_is_forwarded(http, open_face):
    url = "/v1/deployments/clf:predict"
    payload = {"texts": ["good food"]}
    refused = httpx.post(f"{http.url}{url}", json=payload)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["reason"] == "BAD_TOKEN"
    wrong = httpx.post(f"{http.url}{url}", json=payload, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    status, _ = curl("-X", "POST", f"{http.url}{url}", "-H", "Content-Type: application/json",
                     "-d", json.dumps(payload))  # fmt: skip
    assert status == 401
    # A face without a token of its own forwards the caller's: the serving service decides.
    assert httpx.post(f"{open_face.url}{url}", json=payload).status_code == 401
    assert httpx.post(f"{open_face.url}{url}", json=payload, headers=AUTH).status_code == 200
    # The OpenAI routes too, in OpenAI's error shape.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{http.url}/v1", api_key="wrong", max_retries=0).models.list()


# --- the OpenAI-compatible API, through the official client -----------------------------------


def test_models_are_the_deployments_and_a_model_name_chooses_the_adapter(llm, grpc_client):
    ids = {m.id for m in llm.models.list()}
    assert {"clf", "guarded", "llm", "llm:a", "long"} <= ids
    texts = {}
    for model, adapter in (("llm", ""), ("llm:a", "a")):
        texts[model] = llm.completions.create(model=model, prompt="w1 w2 w3", max_tokens=8)
        direct = grpc_client.serving.Generate(
            pb.GenerateRequest(
                deployment="llm",
                prompt="w1 w2 w3",
                adapter=adapter,
                decoding=tpb.DecodingOptions(max_new_tokens=8),
            )
        )
        assert texts[model].choices[0].text == direct.text
    assert texts["llm"].choices[0].text != texts["llm:a"].choices[0].text
    with pytest.raises(openai.BadRequestError) as unknown:
        llm.completions.create(model="llm:zzz", prompt="w1")
    assert unknown.value.body["param"] == "model"


def test_chat_and_completions_answer_like_generate(llm, grpc_client):
    messages = [{"role": "user", "content": "w1 w2"}]
    chat = llm.chat.completions.create(model="llm", messages=messages, max_tokens=6)
    direct = grpc_client.serving.Generate(
        pb.GenerateRequest(
            deployment="llm",
            messages=[pb.ChatTurn(role="user", content="w1 w2")],
            decoding=tpb.DecodingOptions(max_new_tokens=6),
        )
    )
    assert chat.choices[0].message.content == direct.text
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason == direct.finish_reason
    assert chat.usage.prompt_tokens == direct.usage.prompt_tokens
    assert chat.usage.completion_tokens == direct.usage.completion_tokens
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    text = llm.completions.create(model="llm", prompt="w1 w2 w3", max_tokens=12)
    raw = grpc_client.serving.Generate(
        pb.GenerateRequest(
            deployment="llm", prompt="w1 w2 w3", decoding=tpb.DecodingOptions(max_new_tokens=12)
        )
    )
    assert text.choices[0].text == raw.text and text.choices[0].finish_reason == "length"
    assert text.usage.completion_tokens == 12
    # Stop strings, seeded sampling.
    word = raw.text.split()[2]
    stopped = llm.completions.create(model="llm", prompt="w1 w2 w3", max_tokens=12, stop=word)
    assert stopped.choices[0].finish_reason == "stop" and word not in stopped.choices[0].text
    sampled = [
        llm.completions.create(
            model="llm", prompt="w1", max_tokens=8, temperature=1.5, top_p=0.9, seed=7
        )
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_streams_are_server_sent_events_as_openai_sends_them(llm, http):
    messages = [{"role": "user", "content": "w1 w2"}]
    whole = llm.chat.completions.create(model="llm", messages=messages, max_tokens=10)
    chunks = list(
        llm.chat.completions.create(
            model="llm",
            messages=messages,
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for p in pieces if p) >= 2  # text arrived piece by piece
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] == whole.choices[0].finish_reason and not any(finishing[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == (
        whole.usage.completion_tokens
    )
    streamed = "".join(
        c.choices[0].text
        for c in llm.completions.create(model="llm", prompt="w1 w2 w3", max_tokens=12, stream=True)
    )
    assert (
        streamed
        == llm.completions.create(model="llm", prompt="w1 w2 w3", max_tokens=12).choices[0].text
    )

    # On the wire, exactly: "data: {json}" events, then "data: [DONE]".
    status, body = curl(
        "-N", "-X", "POST", f"{http.url}/v1/completions", "-H", f"Authorization: Bearer {TOKEN}",
        "-H", "Content-Type: application/json",
        "-d", json.dumps({"model": "llm", "prompt": "w1 w2", "max_tokens": 4, "stream": True}),
    )  # fmt: skip
    events = [e for e in body.split("\n\n") if e]
    assert status == 200 and all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "length"


def test_openai_errors_name_the_parameter(llm, grpc_client):
    messages = [{"role": "user", "content": "w1"}]
    with pytest.raises(openai.NotFoundError) as missing:
        llm.chat.completions.create(model="nope", messages=messages)
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as penalty:
        llm.chat.completions.create(model="llm", messages=messages, frequency_penalty=0.5)
    assert penalty.value.body["param"] == "frequency_penalty"
    with pytest.raises(openai.BadRequestError) as too_long:
        llm.chat.completions.create(model="llm", messages=messages, max_tokens=100_000)
    assert too_long.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as sampling:
        llm.completions.create(model="llm", prompt="w1", temperature=5)
    assert sampling.value.body["param"] == "temperature"
    # repetition_penalty, an extension, goes through extra_body to the service's decoding.
    penalized = llm.completions.create(
        model="llm", prompt="w1 w1 w1", max_tokens=8, extra_body={"repetition_penalty": 5.0}
    )
    direct = grpc_client.serving.Generate(
        pb.GenerateRequest(
            deployment="llm",
            prompt="w1 w1 w1",
            decoding=tpb.DecodingOptions(max_new_tokens=8, repetition_penalty=5.0),
        )
    )
    assert penalized.choices[0].text == direct.text


def test_safety_blocks_over_the_openai_api(llm, grpc_client, models):
    _, records = models
    deploy(grpc_client, "llm-guarded", records["llama"].id, policy=BLOCK_SECRETS)
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        llm.completions.create(model="llm-guarded", prompt="my password w1", max_tokens=4)
    assert blocked.value.status_code == 403 and blocked.value.body["rule"] == "no-secrets"
    with pytest.raises(openai.PermissionDeniedError):  # a stream refused before its first event
        llm.completions.create(model="llm-guarded", prompt="password", max_tokens=4, stream=True)
    # An output rule that fires on what the model writes ends the stream: content_filter.
    said = llm.completions.create(model="llm", prompt="w1 w2 w3", max_tokens=12).choices[0].text
    word = said.split()[3]
    rule = (
        f"output_rules:\n  - name: no-{word}\n"
        f"    match: {{name: keywords, config: {{words: [{word}]}}}}\n"
    )
    deploy(grpc_client, "llm-strict", records["llama"].id, policy=rule)
    chunks = list(
        llm.completions.create(model="llm-strict", prompt="w1 w2 w3", max_tokens=12, stream=True)
    )
    last = chunks[-1]
    assert last.choices[0].finish_reason == "content_filter"
    assert last.safety_block["rule"] == f"no-{word}" and last.safety_block["withdrawn"] is True
    with pytest.raises(openai.PermissionDeniedError) as unary:
        llm.completions.create(model="llm-strict", prompt="w1 w2 w3", max_tokens=12)
    assert unary.value.body["rule"] == f"no-{word}"


def test_a_client_that_hangs_up_stops_its_generation(http, grpc_client):
    payload = {"model": "long", "prompt": "w1 w2", "max_tokens": 4000, "stream": True}
    with httpx.stream(
        "POST", f"{http.url}/v1/completions", json=payload, headers=AUTH, timeout=60
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a reader dropped closes the connection
        assert next(line for line in lines if line.startswith("data: "))
        assert active(grpc_client, "long") == 1
    hung_up = time.monotonic()
    while active(grpc_client, "long") and time.monotonic() - hung_up < 60:
        time.sleep(0.01)
    stopped_s = time.monotonic() - hung_up
    assert active(grpc_client, "long") == 0
    # How long the whole generation takes here: the abandoned one stopped long before.
    began = time.monotonic()
    whole = grpc_client.serving.Generate(
        pb.GenerateRequest(
            deployment="long", prompt="w1 w2", decoding=tpb.DecodingOptions(max_new_tokens=4000)
        ),
        timeout=600,
    )
    assert whole.usage.completion_tokens == 4000
    assert stopped_s < (time.monotonic() - began) / 4, "the abandoned generation ran on"


def test_too_many_generations_is_429(http, llm, grpc_client):
    payload = {"model": "long", "prompt": "w1 w2", "max_tokens": 4000, "stream": True}
    readers = []  # each stream's line reader: a reader dropped closes its connection
    with contextlib.ExitStack() as streams:
        for _ in range(MAX_GENERATIONS):
            response = streams.enter_context(
                httpx.stream(
                    "POST", f"{http.url}/v1/completions", json=payload, headers=AUTH, timeout=60
                )
            )
            readers.append(response.iter_lines())
            assert next(line for line in readers[-1] if line.startswith("data: "))
        assert active(grpc_client, "long") == MAX_GENERATIONS
        with pytest.raises(openai.RateLimitError) as refused:
            llm.completions.create(model="long", prompt="w1", max_tokens=4)
        assert refused.value.body["code"] == "too_many_generations"
    hung_up = time.monotonic()
    while active(grpc_client, "long") and time.monotonic() - hung_up < 60:
        time.sleep(0.01)
    assert llm.completions.create(model="long", prompt="w1", max_tokens=4).choices[0].text


def active(client: Client, name: str) -> int:
    listed = client.serving.ListDeployments(pb.ListDeploymentsRequest(page_size=100)).deployments
    return {d.name: d for d in listed}[name].active_generations


def test_tls_by_the_same_settings(tmp_path, grpc_client):
    from tests.unit.kernel.test_server import self_signed

    cert, key = self_signed(tmp_path)
    home = tmp_path / "home"
    settings = make_settings(home, [home], auth_token=TOKEN, tls_cert=cert, tls_key=key)
    secure = HttpThread(settings, upstream=grpc_client.address).start()
    try:
        assert secure.url.startswith("https://")
        url = f"{secure.url}/v1/deployments/clf:predict"
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = httpx.post(url, json={"texts": ["good food"]}, headers=AUTH, verify=trusted)
        assert answer.status_code == 200 and answer.json()["results"][0]["prediction"]["label"]
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on a TLS port
            httpx.get(f"http://127.0.0.1:{secure.port}/healthz", timeout=5)
        status, body = curl("--cacert", str(cert), f"{secure.url}/healthz")
        assert status == 200 and json.loads(body)["status"] == "SERVING"
    finally:
        secure.stop()


def test_each_connection_gets_tcp_nodelay():
    """The listener is one asyncio sets TCP_NODELAY on per connection; without it every
    keep-alive response waited ~40 ms for a delayed ACK (headers and body are two writes)."""
    import asyncio
    import socket

    from forgeline.services.http.server import _listen

    async def nodelay() -> int:
        connected: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                connected.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=_listen("127.0.0.1", 0))
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(connected, 30)
            finally:
                writer.close()

    assert asyncio.run(nodelay()) != 0


def test_the_command_serves_it_as_a_process(tmp_path, grpc_client):
    import os
    import signal
    import sys

    env = {**os.environ, "FORGELINE_HOME": str(tmp_path), "FORGELINE_AUTH_TOKEN": TOKEN}
    command = [sys.executable, "-m", "forgeline", "http", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--upstream", grpc_client.address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = next(line for line in process.stdout if line.startswith("forgeline http serving"))
        url = f"http://{line.split()[-1]}"
        assert httpx.get(f"{url}/healthz").json()["status"] == "SERVING"
        answer = httpx.post(
            f"{url}/v1/deployments/clf:predict", json={"texts": ["good food"]}, headers=AUTH
        )
        assert answer.status_code == 200
    finally:
        process.terminate()
        # uvicorn stops gracefully on SIGTERM, then re-raises the signal it handled.
        assert process.wait(30) in (0, -signal.SIGTERM)
