"""Generate and GenerateStream through a real serving service: a tiny random-init llama (raw
prompts and chat messages), LoRA adapters on it chosen per request, a tiny t5, the deployment's
safety policy on the prompt and on the streamed output (audited in a real safety service),
limits, a cancelled stream stopping its generation, and concurrent requests continuously
batched (a short one joining a long generation and leaving at its own end)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)
from forgeline.model_import import ModelImporter
from forgeline.paths import PathValidator
from forgeline.v1 import common_pb2, safety_service_pb2, serving_service_pb2_grpc
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from tests.cli_runner import forgeline
from tests.conftest import ServiceThread, make_settings
from tests.fixtures import ready_client, started
from tests.tiny_llm import tiny_llama_folder, tiny_llama_gguf, tiny_t5

MAX_GENERATIONS = 4
LONG_WINDOW = 4096


def commit(store: ArtifactStore, folder: Path, name: str, task: str, **meta) -> ArtifactRecord:
    kind = "adapter" if meta.get("format") == "peft_adapter" else "model"
    return store.commit_dir(
        folder,
        kind=kind,
        name=name,
        metadata={"format": "hf", "task": task, **meta},
        lineage=Lineage(),
    )


def lora(base: Path, out: Path, seed: int) -> Path:
    """A causal-LM LoRA adapter of ``base`` with random (non-zero) weights."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 2.0)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def safety_service(tmp_path_factory):
    yield from started(tmp_path_factory, "safety")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, dict[str, ArtifactRecord]]:
    from transformers import AutoTokenizer

    home, work = tmp_path_factory.mktemp("gen-home"), tmp_path_factory.mktemp("gen-work")
    llama = tiny_llama_folder(work / "llama")
    long = shutil.copytree(llama, work / "long")
    config = json.loads((long / "config.json").read_text())
    (long / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    plain = shutil.copytree(llama, work / "plain")
    tokenizer_config = json.loads((plain / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(llama)
    t5 = work / "t5"
    tiny_t5(tokenizer).save_pretrained(t5)
    tokenizer.save_pretrained(t5)
    adapters = {
        name: lora(llama, work / name, seed) for name, seed in (("lora-a", 1), ("lora-b", 2))
    }
    store = ArtifactStore(home / "artifacts")  # commit_dir moves each folder into the store
    try:
        records = {
            "llama": commit(store, llama, "tiny-llama", "causal_lm"),
            "long": commit(store, long, "tiny-llama-long", "causal_lm"),
            "plain": commit(store, plain, "tiny-llama-plain", "causal_lm"),
            "t5": commit(store, t5, "tiny-t5", "seq2seq"),
        }
        # An imported GGUF (as ImportModel stores the SmolLM2 file) is a causal LM artifact.
        gguf = tiny_llama_gguf(work / "tiny.gguf")
        importer = ModelImporter(store, PathValidator([work], stores=[home]))
        records["gguf"] = importer.run(str(gguf), producer="test").model
        for name, folder in adapters.items():
            records[name] = commit(
                store,
                folder,
                name,
                "causal_lm",
                format="peft_adapter",
                base_artifact_id=records["llama"].id,
            )
        return home, records
    finally:
        store.close()


@pytest.fixture(scope="module")
def serving(models, safety_service) -> Iterator[Client]:
    home, _ = models
    settings = make_settings(
        home,
        [home],
        addresses={"safety": safety_service.service.address},
        max_generations=MAX_GENERATIONS,
    )
    service = ServiceThread("serving", settings).start()
    try:
        yield from ready_client(service.address)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def safety(safety_service) -> Iterator[Client]:
    yield from ready_client(safety_service.service.address)


def deploy(client: Client, name: str, model_id: str, **fields) -> pb.Deployment:
    operation = client.serving.DeployModel(
        pb.DeployModelRequest(name=name, model_id=model_id, **fields)
    )
    return client.wait(operation, pb.DeployModelResponse, timeout=120).deployment


def listed(client: Client, name: str) -> pb.Deployment:
    response = client.serving.ListDeployments(pb.ListDeploymentsRequest(page_size=100))
    return {d.name: d for d in response.deployments}[name]


def generate(client: Client, deployment: str, prompt: str = "", **fields) -> pb.GenerateResponse:
    return client.serving.Generate(
        pb.GenerateRequest(deployment=deployment, prompt=prompt, **fields)
    )


def stream(client: Client, deployment: str, prompt: str = "", **fields):
    return list(
        client.serving.GenerateStream(
            pb.GenerateStreamRequest(deployment=deployment, prompt=prompt, **fields)
        )
    )


def greedy(n: int, **more) -> tpb.DecodingOptions:
    return tpb.DecodingOptions(max_new_tokens=n, **more)


def test_generate_and_stream_agree_with_usage_and_finish_reasons(serving, models):
    _, records = models
    shown = deploy(serving, "llama", records["llama"].id)
    assert (shown.task, shown.context_window, shown.max_new_tokens) == ("causal_lm", 128, 512)
    answer = generate(serving, "llama", "w1 w2 w3", decoding=greedy(12))
    assert answer.finish_reason == "length" and answer.usage.completion_tokens == 12
    assert answer.usage.prompt_tokens == 3 and answer.text
    pieces = stream(serving, "llama", "w1 w2 w3", decoding=greedy(12))
    *tokens, last = pieces
    assert len(tokens) >= 2 and all(p.text for p in tokens)  # text arrived piece by piece
    assert "".join(p.text for p in tokens) == answer.text == last.output
    assert (last.finish_reason, last.usage.completion_tokens) == ("length", 12)
    assert not last.HasField("block")

    # A stop string ends generation and is cut with what follows.
    words = answer.text.split()
    stopped = generate(serving, "llama", "w1 w2 w3", decoding=greedy(12, stop=[words[2]]))
    assert stopped.finish_reason == "stop" and stopped.text == " ".join(words[:2]) + " "
    streamed = stream(serving, "llama", "w1 w2 w3", decoding=greedy(12, stop=[words[2]]))
    assert "".join(p.text for p in streamed[:-1]) == stopped.text
    assert streamed[-1].finish_reason == "stop"

    # Seeded sampling is reproducible.
    sample = tpb.DecodingOptions(
        strategy=tpb.DECODING_STRATEGY_SAMPLE, seed=7, temperature=1.5, max_new_tokens=8
    )
    assert generate(serving, "llama", "w1", decoding=sample).text == (
        generate(serving, "llama", "w1", decoding=sample).text
    )


def test_chat_messages_use_the_chat_template(serving, models):
    _, records = models
    deploy(serving, "chat", records["llama"].id)
    messages = [pb.ChatTurn(role="user", content="w1 w2")]
    chat = generate(serving, "chat", messages=messages, decoding=greedy(5))
    # The tiny template renders "user: w1 w2\n": 4 word-level tokens (":" is one).
    rendered = generate(serving, "chat", "user : w1 w2", decoding=greedy(5))
    assert chat.usage.prompt_tokens == rendered.usage.prompt_tokens == 4
    assert chat.text == rendered.text
    with pytest.raises(FailedPrecondition) as not_classifier:
        serving.serving.Predict(pb.ServingServicePredictRequest(deployment="chat", text="w1"))
    assert not_classifier.value.reason == "NOT_A_CLASSIFIER"
    imported = deploy(serving, "imported", records["gguf"].id)
    assert imported.task in ("causal_lm", "instruction") and imported.context_window == 128
    answer = generate(serving, "imported", "w1 w2", decoding=greedy(5))
    assert answer.usage.completion_tokens >= 1 and answer.finish_reason in ("stop", "length")
    # Its reconstructed tokenizer reads this chat as no tokens at all: refused, not crashed.
    with pytest.raises(InvalidArgument) as empty:
        generate(serving, "imported", messages=messages, decoding=greedy(5))
    assert empty.value.violations[0].field == "messages" and "0 tokens" in str(empty.value)
    deploy(serving, "plain", records["plain"].id)
    with pytest.raises(FailedPrecondition) as no_template:
        generate(serving, "plain", messages=messages)
    assert no_template.value.reason == "NO_CHAT_TEMPLATE"
    assert no_template.value.metadata["field"] == "messages"
    with pytest.raises(InvalidArgument) as both:
        generate(serving, "chat", "w1", messages=messages)
    assert both.value.violations[0].field == "prompt"


def test_adapters_are_chosen_per_request_and_seq2seq_serves(serving, models):
    _, records = models
    deploy(
        serving,
        "tuned",
        records["llama"].id,
        adapters={"a": records["lora-a"].id, "b": records["lora-b"].id},
    )
    texts = {
        name: generate(serving, "tuned", "w1 w2 w3", adapter=name, decoding=greedy(8))
        for name in ("", "a", "b")
    }
    deploy(serving, "base", records["llama"].id)
    base = generate(serving, "base", "w1 w2 w3", decoding=greedy(8)).text
    assert texts[""].text == base and texts[""].adapter == ""
    assert len({t.text for t in texts.values()}) == 3 and texts["a"].adapter == "a"
    # Concurrent requests on different adapters each get their own adapter's answer.
    with ThreadPoolExecutor(MAX_GENERATIONS) as pool:
        concurrent = list(
            pool.map(
                lambda name: (
                    generate(serving, "tuned", "w1 w2 w3", adapter=name, decoding=greedy(8)).text
                ),
                ["a", "b", "", "a"],
            )
        )
    assert concurrent == [texts["a"].text, texts["b"].text, texts[""].text, texts["a"].text]
    assert listed(serving, "tuned").batched_rows > 0  # rows on different adapters, one loop
    only = deploy(serving, "lora-only", records["lora-a"].id)
    assert only.default_adapter == "default"
    assert generate(serving, "lora-only", "w1 w2 w3", decoding=greedy(8)).text == texts["a"].text
    with pytest.raises(InvalidArgument) as unknown:
        generate(serving, "tuned", "w1", adapter="zzz")
    assert unknown.value.violations[0].field == "adapter"

    deploy(serving, "t5", records["t5"].id)
    answer = generate(serving, "t5", "w1 w2 w3", decoding=greedy(6))
    assert answer.usage.completion_tokens <= 6 and answer.finish_reason in ("stop", "length")
    assert (
        "".join(p.text for p in stream(serving, "t5", "w1 w2 w3", decoding=greedy(6))[:-1])
        == answer.text
    )


def test_limits_have_precise_statuses(serving, models):
    _, records = models
    deploy(serving, "capped", records["llama"].id, max_new_tokens=20)
    with pytest.raises(InvalidArgument) as too_many:
        generate(serving, "capped", "w1", decoding=greedy(21))
    assert too_many.value.violations[0].field == "decoding.max_new_tokens"
    assert "20" in str(too_many.value) and "21" in str(too_many.value)
    long_prompt = " ".join(["w5"] * 120)
    with pytest.raises(InvalidArgument) as window:
        generate(serving, "capped", long_prompt, decoding=greedy(20))
    message = str(window.value)
    assert window.value.violations[0].field == "prompt"
    assert "120 tokens" in message and "128 tokens" in message
    with pytest.raises(InvalidArgument) as beam:
        stream(serving, "capped", "w1", decoding=tpb.DecodingOptions(strategy=2))
    assert beam.value.violations[0].field == "decoding.strategy"
    beam_answer = generate(
        serving, "capped", "w1 w2", decoding=tpb.DecodingOptions(strategy=2, max_new_tokens=4)
    )
    assert beam_answer.usage.completion_tokens <= 4
    with pytest.raises(InvalidArgument) as bad:
        generate(serving, "capped", "w1", decoding=tpb.DecodingOptions(temperature=0.5))
    assert bad.value.violations[0].field.startswith("decoding.temperature")
    with pytest.raises(InvalidArgument) as length:
        deploy(serving, "capped", records["llama"].id, max_sequence_length=64)
    assert length.value.violations[0].field == "max_sequence_length"


def test_the_safety_policy_guards_prompt_and_stream_and_is_audited(serving, safety, models):
    _, records = models
    deploy(serving, "open", records["llama"].id)
    words = generate(serving, "open", "w1 w2 w3", decoding=greedy(12)).text.split()
    # A rule on the third word the model emits: the first two are sent, then withdrawn.
    policy = f"""
input_filters:
  - name: no-w9
    filter: {{name: blocklist, config: {{words: [w9]}}}}
    action: block
output_rules:
  - name: no-third
    match: {{name: keywords, config: {{words: [{words[2]}]}}}}
"""
    deploy(serving, "guarded", records["llama"].id, policy=common_pb2.PolicySource(yaml=policy))
    *sent, last = stream(serving, "guarded", "w1 w2 w3", decoding=greedy(12))
    assert "".join(p.text for p in sent).split() == words[:2]
    assert last.finish_reason == "safety" and last.output == ""
    assert last.block.rule == "no-third" and last.block.withdrawn and last.block.audit_event
    assert last.usage.completion_tokens == 3  # generation stopped at the blocked token
    with pytest.raises(PermissionDenied) as unary:
        generate(serving, "guarded", "w1 w2 w3", decoding=greedy(12))
    assert unary.value.reason == "OUTPUT_BLOCKED" and unary.value.metadata["rule"] == "no-third"
    with pytest.raises(PermissionDenied) as prompt:
        stream(serving, "guarded", messages=[pb.ChatTurn(role="user", content="w9 w1")])
    assert prompt.value.reason == "INPUT_BLOCKED" and prompt.value.metadata["rule"] == "no-w9"
    events = {prompt.value.metadata["audit_event"], unary.value.metadata["audit_event"]}
    events.add(last.block.audit_event)
    deadline = time.monotonic() + 30
    while True:
        entries = safety.safety.ListAuditEntries(
            safety_service_pb2.ListAuditEntriesRequest(kind="blocked_request", subject="guarded")
        ).entries
        if {e.event.id for e in entries} >= events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {e.event.id for e in entries} >= events
    assert listed(serving, "guarded").blocked == 3


def test_a_cancelled_stream_stops_its_generation_and_streams_are_bounded(serving, models):
    _, records = models
    deploy(serving, "long", records["long"].id, max_new_tokens=4000)
    start = time.perf_counter()
    timed = generate(serving, "long", "w1 w2 w3", decoding=greedy(40))
    per_token = (time.perf_counter() - start) / timed.usage.completion_tokens

    channel = grpc.insecure_channel(serving.address)  # raw calls: a client can cancel them
    stub = serving_service_pb2_grpc.ServingServiceStub(channel)
    calls = [
        stub.GenerateStream(
            pb.GenerateStreamRequest(deployment="long", prompt="w1 w2", decoding=greedy(4000))
        )
        for _ in range(MAX_GENERATIONS)
    ]
    for call in calls:
        assert next(call).text  # generating
    assert listed(serving, "long").active_generations == MAX_GENERATIONS
    with pytest.raises(ResourceExhausted) as full:
        generate(serving, "long", "w1", decoding=greedy(4))
    assert full.value.reason == "TOO_MANY_GENERATIONS"

    cancelled = time.perf_counter()
    for call in calls:
        call.cancel()
    # The threads end at their next token: far sooner than the 4000 tokens asked for.
    bound = 2.0 + 50 * per_token
    deadline = cancelled + bound
    while listed(serving, "long").active_generations and time.perf_counter() < deadline:
        time.sleep(per_token)
    assert listed(serving, "long").active_generations == 0
    assert time.perf_counter() - cancelled < min(bound, 4000 * per_token / 4)
    assert all(call.code() == grpc.StatusCode.CANCELLED for call in calls)
    # The decode loop leaves with its last row (a beam or adapter generation's own thread
    # with its request).
    deadline = time.perf_counter() + 5
    while any(t.name == "decode-long" for t in threading.enumerate()):
        assert time.perf_counter() < deadline
        time.sleep(0.01)
    channel.close()


def test_the_cli_streams_a_generation_and_says_when_it_is_withdrawn(serving, models):
    _, records = models
    deploy(serving, "cli-llama", records["llama"].id)
    expected = generate(serving, "cli-llama", "w1 w2 w3", decoding=greedy(6)).text
    shown = forgeline(
        {"serving": serving.address},
        "deploy",
        "generate",
        "cli-llama",
        "w1 w2 w3",
        "--max-new-tokens",
        "6",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == expected
    assert "length: 3 prompt + 6 generated tokens" in shown.stdout
    first = expected.split()[0]
    match = {"name": "keywords", "config": {"words": [first]}}
    rule = json.dumps({"output_rules": [{"name": "no-first", "match": match}]})  # JSON is YAML
    deploy(serving, "cli-guarded", records["llama"].id, policy=common_pb2.PolicySource(yaml=rule))
    blocked = forgeline(
        {"serving": serving.address}, "deploy", "generate", "cli-guarded", "w1 w2 w3"
    )
    assert blocked.returncode == 1 and "blocked by rule 'no-first'" in blocked.stdout
    assert "withdrawn" in blocked.stdout


def test_concurrent_requests_are_continuously_batched(serving, models):
    _, records = models
    deploy(serving, "batched", records["llama"].id)
    prompts = ["w1 w2 w3", "w4", "w5 w6", "w7 w8 w9 w10"]  # MAX_GENERATIONS at once
    lengths = [60, 10, 36, 48]
    alone = [
        generate(serving, "batched", p, decoding=greedy(n))
        for p, n in zip(prompts, lengths, strict=True)
    ]
    before = listed(serving, "batched")

    def call(i: int) -> tuple[str, int, str]:
        if i % 2:  # half of them streamed: streams share the passes too
            events = stream(serving, "batched", prompts[i], decoding=greedy(lengths[i]))
            last = events[-1]
            return "".join(e.text for e in events), last.usage.completion_tokens, last.finish_reason
        answer = generate(serving, "batched", prompts[i], decoding=greedy(lengths[i]))
        return answer.text, answer.usage.completion_tokens, answer.finish_reason

    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(call, range(len(prompts))))
    after = listed(serving, "batched")
    # Left padding and per-row decoding: an answer does not depend on its company.
    assert [t for t, _, _ in together] == [a.text for a in alone]
    assert [n for _, n, _ in together] == [a.usage.completion_tokens for a in alone]
    assert [r for _, _, r in together] == [a.finish_reason for a in alone]
    assert after.requests - before.requests == len(prompts)
    passes = after.batches - before.batches
    rows = after.batched_rows - before.batched_rows
    # Every token generated (and each prompt read) is one row of one pass: rows left the batch
    # as they ended (no row stepped past its end), and passes carried several rows at once.
    generated = sum(n + (reason == "stop") for _, n, reason in together)  # + an end token
    assert rows == generated
    assert rows / passes > 1.5 and passes < generated


def test_a_new_request_does_not_wait_for_a_long_generation(serving, models):
    _, records = models
    deploy(serving, "joined", records["long"].id, max_new_tokens=4000)
    start = time.perf_counter()
    timed = generate(serving, "joined", "w1 w2 w3", decoding=greedy(40))
    per_token = (time.perf_counter() - start) / timed.usage.completion_tokens
    sampled = tpb.DecodingOptions(
        strategy=tpb.DECODING_STRATEGY_SAMPLE, seed=11, temperature=1.3, max_new_tokens=12
    )
    short_alone = generate(serving, "joined", "w5 w6", decoding=greedy(8))
    sampled_alone = generate(serving, "joined", "w7", decoding=sampled)

    channel = grpc.insecure_channel(serving.address)
    stub = serving_service_pb2_grpc.ServingServiceStub(channel)
    long = stub.GenerateStream(
        pb.GenerateStreamRequest(deployment="joined", prompt="w1 w2", decoding=greedy(4000))
    )
    assert next(long).text  # the long generation runs
    joined = time.perf_counter()
    short = generate(serving, "joined", "w5 w6", decoding=greedy(8))
    waited = time.perf_counter() - joined
    assert listed(serving, "joined").active_generations == 1  # the long one goes on
    company = generate(serving, "joined", "w7", decoding=sampled)
    long.cancel()
    channel.close()
    # It joined the running batch and left it after its own 8 tokens: far sooner than the
    # 4000 the long one asked for, and with the answer it gets alone (a seeded sample too).
    assert short.text == short_alone.text and short.usage == short_alone.usage
    assert company.text == sampled_alone.text
    assert waited < 2.0 + 40 * per_token
