"""The cost of crossing Ray nodes: the same 2-worker training job (TrainModel over gRPC, DDP on
Ray Train) on 1 node x 2 workers and on 2 nodes x 1 worker, side by side in one run, and the
ratio of their throughputs.

    python benchmarks/scale.py [--model minilm|config] [--steps 40] [--batch 8] [--seq-len 32]
        [--quiet-wait 30] [--repeats 3] [--out PATH] [--seed 0]

Writes benchmarks/results/scale.json. What it measures, and how:

- Layouts, each a Ray cluster of its own built from ``ray start`` processes
  (``forgeline/raynodes.py``), with a ``forgeline serve training`` process pointed at it
  (RAY_ADDRESS = the head's GCS address, the cluster's token in its environment):
  ``one_node``: a head with 2 CPUs and no worker node, both workers on one raylet;
  ``two_nodes``: a head with 1 CPU plus one worker node with 1 CPU, two raylets, one worker
  on each. Both get the same request: num_workers=2, cpus_per_worker=1, the same model, data,
  batch per worker, steps and seed, so step i trains on the same rows in both. Where the
  workers ran is read from the run's ``workers placed`` progress event (Ray node ids, recorded
  in the JSON); the benchmark fails when two_nodes did not put its ranks on two nodes.
- Both "nodes" share this machine's CPUs and its loopback network. The ratio measures what
  crossing raylets costs through Ray's and gloo's cross-node path (a second raylet and object
  store, the all-reduce between processes that Ray placed on different nodes), not a real
  network: on separate hosts the gradient bytes would cross a wire. The all-reduce payload per
  step (trainable parameters x 4 bytes; with 2 ranks a ring all-reduce sends and receives about
  that much per rank) is reported so the ratio can be related to the bytes moved.
- Throughput is global: the recipe's per-step metric point (rank 0, every step) has
  samples_per_second = rank 0's samples x world size / rank 0's step window, so one step takes
  batch x world / samples_per_second seconds (DDP steps are in lockstep: rank 0's window holds
  the all-reduce wait). The first 20% of the steps are warm-up and dropped; the steady rate is
  (kept steps' samples, all ranks) / (sum of their step times). Checkpoints are taken only at
  the last step, so no step window holds a checkpoint write.
- Per layout also: mean and median step time, submit-to-first-step (TrainModel call to the
  arrival over StreamEvents of step 1's metric point; it includes the service joining the
  cluster and shipping forgeline's code in the job's runtime environment, as on a real
  cluster), the run's wall time (submit to done) and the time to start the cluster.
- A shared machine: one run is not a figure (two runs three minutes apart gave 0.834 and
  0.961). A repetition runs one_node, then two_nodes, each on a fresh cluster; ``--repeats``
  repetitions run interleaved, every metric is the median over them with its spread in the JSON,
  and the goal is judged on the median. Before each layout's run the benchmark waits (up to
  ``--quiet-wait`` s) until processes outside its own tree (its Ray nodes are in it) use under
  10% of the CPUs, and records the share they took during each layout ("noise"). Each step's
  time, per repetition, is in the JSON too.

Goal: ``cross_node_throughput_ratio`` >= 0.9. Both layouts move the same bytes over the same
loopback, so losing more than 10% would be overhead of running across raylets itself, which a
real network would only add to.

Model: ``minilm`` (default), the bundled all-MiniLM-L6-v2 (22.7M parameters: 87 MiB of
gradients to all-reduce every step), with ``--batch 8`` and ``--seq-len 32``: a step takes
~380 ms here, long enough to time steadily; the same forward, backward and optimizer step
without DDP takes ~255 ms on one core, so the gradient exchange, what crossing nodes could slow
down, is about a third of it. Truncating to 32 tokens keeps every batch nearly the same
shape, so step times vary little. ``config``: a 4-layer, 256-wide BERT built from config
(about 5M parameters, ~19 MiB per step), for a smaller payload.

Data: the UCI sentiment sentences in ../shared/data/en when present, else generated sentences
(the JSON says which).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from forgeline.v1 import common_pb2

if TYPE_CHECKING:
    from forgeline.client import Client
    from forgeline.v1 import training_service_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    ServiceProcess,
    bench_options,
    fold,
    interleave,
    noise,
    print_summary,
    results,
    wait_quiet,
    write_results,
)
from training import WARMUP_SHARE, load_rows  # noqa: E402 - the same data as benchmarks/training.py

from forgeline import raynodes  # noqa: E402

WORKERS = 2
CONFIG_BERT = {
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
}
RATIO_TARGET = 0.9


@dataclass(frozen=True)
class Layout:
    key: str  # the metrics' prefix
    title: str
    node_cpus: tuple[int, ...]  # the head's CPUs, then each worker node's


LAYOUTS = (
    Layout("one_node", f"1 node x {WORKERS} workers", (WORKERS,)),
    Layout("two_nodes", f"{WORKERS} nodes x 1 worker", (1,) * WORKERS),
)


# --- the cluster --------------------------------------------------------------------------------


@contextmanager
def cluster(node_cpus: tuple[int, ...], logs: Path) -> Iterator[raynodes.RayNode]:
    """A head and worker nodes with ``node_cpus`` CPUs each, every raylet registered; all of
    them stopped and the head's temp dir removed on the way out, whatever happened."""
    head = raynodes.start_head(num_cpus=node_cpus[0], log=logs / "head.log")
    nodes = [head]
    try:
        for i, cpus in enumerate(node_cpus[1:], 1):
            nodes.append(raynodes.start_worker(head, num_cpus=cpus, log=logs / f"worker{i}.log"))
        yield head
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)


# --- one run ------------------------------------------------------------------------------------


def train_request(
    dataset_id: str, args: argparse.Namespace
) -> training_service_pb2.TrainModelRequest:
    from forgeline.convert import struct
    from forgeline.v1 import training_service_pb2 as pb

    if args.model == "minilm":
        model = pb.ModelSource(builtin="minilm-l6")
    else:
        model = pb.ModelSource(
            from_config=pb.ModelFromConfig(model_type="bert", config=struct(CONFIG_BERT))
        )
    return pb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=dataset_id),
        model=model,
        task=pb.TASK_SEQUENCE_CLASSIFICATION,
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=5e-5,
            batch_size_per_worker=args.batch,
            max_steps=args.steps,
            max_sequence_length=args.seq_len,
            seed=args.seed,
        ),
        scaling=common_pb2.Scaling(num_workers=WORKERS, cpus_per_worker=1),
        checkpoint=pb.CheckpointPolicy(every_steps=args.steps),  # only the last step's
    )


def train(client: Client, request: training_service_pb2.TrainModelRequest) -> dict:
    """Submits ``request`` and follows its events: each step's samples_per_second, the
    placements, and when step 1 arrived."""
    from forgeline.finetune.metrics import PLACED
    from forgeline.v1 import training_service_pb2 as pb

    submitted = time.perf_counter()
    op = client.training.TrainModel(request)
    rates: dict[int, float] = {}
    placements: list[list[str]] = []
    first_step = None
    for event in client.stream_events(op.name):
        if event.HasField("progress") and event.progress.message.startswith(PLACED):
            placements.append(re.findall(r"rank \d+ on node (\w+)", event.progress.message))
        for point in event.metrics.points if event.HasField("metrics") else ():
            if point.name == "samples_per_second":
                rates[point.step] = point.value
                if point.step == 1 and first_step is None:
                    first_step = time.perf_counter()
    response = client.wait(op, pb.TrainModelResponse, timeout=1800)
    finished = time.perf_counter()
    return {
        "rates": [rates[s] for s in sorted(rates)],
        "placements": placements,
        "submit_to_first_step_s": (first_step or finished) - submitted,
        "wall_s": finished - submitted,
        "trainable_parameters": response.trainable_parameters,
    }


def run_layout(
    layout: Layout, dataset_id: str, home: Path, args: argparse.Namespace, log: Callable
) -> dict:
    """One layout: its cluster, a training service on it, the run on a quiet machine."""
    from forgeline.client import Client

    began = time.perf_counter()
    with cluster(layout.node_cpus, home / "logs" / layout.key) as head:
        cluster_start_s = time.perf_counter() - began
        log(f"{layout.title}: cluster up in {cluster_start_s:.1f}s")
        service = ServiceProcess("training", home, {**head.env, "RAY_ADDRESS": head.address})
        try:
            with Client(service.address) as client:
                client.wait_ready()
                quiet = wait_quiet(args.quiet_wait, log)
                run = train(client, train_request(dataset_id, args))
        finally:
            service.stop()
    run.update(quiet_before_share=quiet, cluster_start_s=cluster_start_s)
    log(f"{layout.title}: done in {run['wall_s']:.1f}s, placed {run['placements']}")
    return run


def check_placement(layout: Layout, placements: list[list[str]]) -> list[str]:
    """The run's one placement, on as many nodes as the layout has; raises otherwise."""
    if len(placements) != 1 or len(placements[0]) != WORKERS:
        raise RuntimeError(f"{layout.title}: expected one group of {WORKERS}: {placements}")
    [nodes] = placements
    if len(set(nodes)) != len(layout.node_cpus):
        raise RuntimeError(
            f"{layout.title}: ranks ran on {len(set(nodes))} node(s), not "
            f"{len(layout.node_cpus)}: {nodes}; the measurement means nothing"
        )
    return nodes


# --- arithmetic ---------------------------------------------------------------------------------


def rank_batches(rows: int, batch: int, steps: int) -> list[int]:
    """Each step's batch on one rank: DistributedSampler gives every rank ceil(rows / world)
    rows per epoch (drop_last off), so an epoch's last batch may be short."""
    per_rank = -(-rows // WORKERS)
    full, rest = divmod(per_rank, batch)
    epoch = [batch] * full + ([rest] if rest else [])
    return [epoch[i % len(epoch)] for i in range(steps)]


def step_times(rates: list[float], batches: list[int]) -> list[float]:
    """Each step's seconds: its samples on all ranks / its global samples_per_second."""
    return [b * WORKERS / r for b, r in zip(batches, rates, strict=True)]


def steady(times: list[float], batches: list[int], warm: int) -> dict[str, float]:
    """Global samples/s and step times over the steps after ``warm``."""
    kept = sorted(times[warm:])
    return {
        "samples_per_s": sum(batches[warm:]) * WORKERS / sum(kept),
        "step_ms_mean": 1000 * sum(kept) / len(kept),
        "step_ms_median": 1000 * kept[len(kept) // 2],
    }


# --- the report ---------------------------------------------------------------------------------


def machine() -> dict:
    import ray
    import torch
    import transformers

    return _common.machine(
        torch=torch.__version__, transformers=transformers.__version__, ray=ray.__version__
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        choices=("minilm", "config"),
        default="minilm",
        help="the bundled MiniLM or a 4-layer, 256-wide BERT from config",
    )
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps of each run")
    parser.add_argument("--batch", type=int, default=8, help="batch size per worker")
    parser.add_argument("--seq-len", type=int, default=32, help="max sequence length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    bench_options(parser)
    args = parser.parse_args()

    started = time.perf_counter()
    import pyarrow as pa

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.datasets import DatasetRepository

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    train_rows, _, source = load_rows(args.seed, 0)
    rows = len(train_rows["text"])
    log(f"data: {rows} rows from {source}")
    with tempfile.TemporaryDirectory(prefix="forgeline-scale-") as tmp:
        home = Path(tmp) / "home"
        store = ArtifactStore(home / "artifacts")
        dataset_id = (
            DatasetRepository(store)
            .save(
                pa.table(train_rows),
                name="scale-train",
                text_column="text",
                label_column="label",
                lineage=Lineage(),
            )
            .id
        )
        store.close()
        rounds = interleave(
            {
                layout.key: partial(run_layout, layout, dataset_id, home, args, log)
                for layout in LAYOUTS
            },
            args.repeats,
            log=log,
        )

    warm = max(1, round(WARMUP_SHARE * args.steps))
    batches = rank_batches(rows, args.batch, args.steps)
    first = rounds.results[0][LAYOUTS[0].key]
    payload = first["trainable_parameters"] * 4
    nodes: dict[str, list[list[str]]] = {layout.key: [] for layout in LAYOUTS}
    per_repetition = []
    for runs in rounds.results:
        one: dict[str, float] = {}
        for layout in LAYOUTS:
            run = runs[layout.key]
            if len(run["rates"]) != args.steps:
                raise RuntimeError(
                    f"{layout.title}: {len(run['rates'])} steps seen, not {args.steps}"
                )
            nodes[layout.key].append(check_placement(layout, run["placements"]))
            run["step_times"] = step_times(run["rates"], batches)
            for name, value in steady(run["step_times"], batches, warm).items():
                one[f"{layout.key}_{name}"] = value
            for name in ("submit_to_first_step_s", "wall_s", "cluster_start_s"):
                one[f"{layout.key}_{name}"] = run[name]
            one[f"{layout.key}_nodes_used"] = len(set(nodes[layout.key][-1]))
            one[f"{layout.key}_allreduce_mib_per_s"] = (
                payload / 2**20 * 1000 / one[f"{layout.key}_step_ms_mean"]
            )
            one[f"{layout.key}_quiet_before_share"] = run["quiet_before_share"]
        one_node, two_nodes = (layout.key for layout in LAYOUTS)
        one["cross_node_throughput_ratio"] = (
            one[f"{two_nodes}_samples_per_s"] / one[f"{one_node}_samples_per_s"]
        )
        one["cross_node_step_ms_added"] = (
            one[f"{two_nodes}_step_ms_mean"] - one[f"{one_node}_step_ms_mean"]
        )
        per_repetition.append(one)
    metrics, spread = fold(per_repetition)
    metrics.update(
        {
            "steps": args.steps,
            "batch_per_worker": args.batch,
            "workers": WORKERS,
            "max_seq_len": args.seq_len,
            "warmup_steps_dropped": warm,
            "train_rows": rows,
            "data_is_uci": float(not source.startswith("generated")),
            "trainable_parameters": first["trainable_parameters"],
            "allreduce_payload_mib_per_step": payload / 2**20,
            "benchmark_wall_s": time.perf_counter() - started,
        }
    )
    goals = [{"metric": "cross_node_throughput_ratio", "op": ">=", "target": RATIO_TARGET}]

    notes = [
        f"data: {source}",
        f"model: {args.model}",
        "both nodes share this machine's CPUs and loopback network: the ratio is the cost of "
        "Ray's and gloo's cross-raylet path, not of a real network",
        f"samples/s are global (all {WORKERS} ranks); first {warm} steps dropped as warm-up",
        f"metrics are medians over {args.repeats} repetitions (one_node, two_nodes interleaved, "
        "each on a fresh cluster)",
    ]
    report = results(
        "scale",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(rounds.foreign),
        notes=notes,
        layouts={
            layout.key: {
                "title": layout.title,
                "node_cpus": list(layout.node_cpus),
                "node_ids": nodes[layout.key],  # per repetition
                "step_ms": [  # per repetition
                    [round(1000 * t, 1) for t in runs[layout.key]["step_times"]]
                    for runs in rounds.results
                ],
            }
            for layout in LAYOUTS
        },
    )
    path = write_results(report, args.out)

    columns = (
        ("samples/s", "samples_per_s", ".1f"),
        ("step ms", "step_ms_mean", ".0f"),
        ("first step s", "submit_to_first_step_s", ".1f"),
        ("wall s", "wall_s", ".1f"),
    )
    print()
    print(f"{'layout':<22}" + "".join(f"{title:>13}" for title, _, _ in columns))
    for layout in LAYOUTS:
        values = (metrics[f"{layout.key}_{name}"] for _, name, _ in columns)
        cells = (f"{value:>13{fmt}}" for value, (_, _, fmt) in zip(values, columns, strict=True))
        print(f"{layout.title:<22}" + "".join(cells))
    print()
    print_summary(
        report,
        [
            "cross_node_throughput_ratio",
            "cross_node_step_ms_added",
            "allreduce_payload_mib_per_step",
            "benchmark_wall_s",
        ],
        path,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
