"""Per-step orchestration overhead of the gateway: N cheap data-service operations called
directly (submit, Client.wait, one after another) vs the same N operations as an N-step pipeline
run by PipelineService, side by side in one run, on the embedded defaults.

    python benchmarks/gateway.py [--steps 10] [--repeats 10] [--warmup 1] [--rows 200] [--out PATH]

Writes benchmarks/results/gateway.json. What it measures, and how:

- Two real processes, as the embedded stack and the integration tests start them:
  `forgeline serve data --port 0` and `forgeline serve gateway --port 0` (told the data
  service's address through FORGELINE_ADDRESSES), sharing a temporary FORGELINE_HOME; every
  other setting is the default (log level included; logs go to files in that home). This
  process is only the client.
- The operation: ProfileDataset of a tiny dataset (``--rows`` rows of a CSV written into a
  temporary data root and ingested once), a few milliseconds of work, so what is left is the cost
  of running it as an operation.
- chain: direct = N x (ProfileDataset, Client.wait) in a row, each on the dataset id the
  previous profile returned; gateway = an N-step pipeline whose step k takes its dataset_id from
  step k-1's response (``${{ steps.pK.profile.dataset_id }}``), so the steps run one after
  another; SubmitPipeline(no_cache=true), then Client.wait on the run. Both totals are client
  wall clock from the first call to the last response.
  overhead_per_step_ms = (gateway total - direct total) / N, per repeat.
- wide: N independent ProfileDataset steps (the gateway runs up to 4 at once) vs the same N
  direct calls one after another (and, for information, 4 client threads calling directly).
- Each repeat measures both sides of both variants, alternating which side goes first; the
  first ``--warmup`` repeats (the gateway's first run discovers the data service's catalog) are
  dropped. Median, min and max over the kept repeats.
- Where the gateway's time goes (chain, medians over every step of the kept repeats), from
  the step start/end times of GetPipelineRun and the create/end times of the step's data
  operation (GetOperation on the data service; all the same machine's clock): before submit
  (step start -> the data operation exists), in the service (its create -> end), after
  (its end -> step end: WaitOperation noticing, events, response, store writes) and the gap
  between one step's end and the next one's start; plus the run's head (SubmitPipeline call ->
  first step start) and tail (last step end -> Client.wait returns). The direct calls get the
  same split (call -> create, create -> end, end -> response in hand). From these:
  gateway_marginal_per_step_ms (gateway step - direct call + gap: what every step pays) and
  gateway_fixed_per_run_ms (head + tail: what a run pays once, spread over its N steps in
  overhead_per_step_ms). stream_events_no_follow_ms times alone the StreamEvents call the
  orchestrator makes after every step's WaitOperation.
- A shared machine: the CPU share of processes outside this benchmark's tree during each repeat
  goes into the JSON ("noise", with a note above 10%), and each repeat's totals and overheads
  ("per_repeat", their spread under "spread"); the goal is judged on the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    ForeignLoad,
    ServiceProcess,
    bench_options,
    noise,
    print_goals,
    results,
    summarize,
    write_results,
)

GOAL_MS = 50.0
POLLED_S = 0.02  # noticed this long after the operation ended: it waited for a poll tick
WORDS = "great awful fresh cold lovely slow tasty soup food delivery price spicy".split()


# --- processes ----------------------------------------------------------------------------------


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def data_times(data, names: list[str]) -> list[tuple[float, float]]:
    """(create, end) of each data operation, from the data service's own records."""
    from google.longrunning import operations_pb2

    out = []
    for name in names:
        op = data.operations.GetOperation(operations_pb2.GetOperationRequest(name=name))
        meta = data.metadata(op)
        out.append((_seconds(meta.create_time), _seconds(meta.end_time)))
    return out


def direct_chain(data, dataset_id: str, n: int) -> dict:
    """N x (ProfileDataset, Client.wait), each on the dataset id the previous one returned."""
    from forgeline.v1 import data_service_pb2 as dpb

    calls, names = [], []
    current = dataset_id
    start = time.perf_counter()
    for _ in range(n):
        began = time.time()
        op = data.data.ProfileDataset(dpb.ProfileDatasetRequest(dataset_id=current))
        current = data.wait(op, dpb.ProfileDatasetResponse).profile.dataset_id
        calls.append((began, time.time()))
        names.append(op.name)
    total = time.perf_counter() - start
    assert current == dataset_id
    return {"total_s": total, "calls": calls, "service": data_times(data, names)}


def stream_events_ms(data, dataset_id: str, calls: int = 20) -> float:
    """Median client wall time of one StreamEvents(no_follow) on a finished operation: the call
    the orchestrator makes after every WaitOperation of a step (RemoteService.events)."""
    from forgeline.v1 import data_service_pb2 as dpb
    from forgeline.v1 import event_service_pb2 as epb

    op = data.data.ProfileDataset(dpb.ProfileDatasetRequest(dataset_id=dataset_id))
    data.wait(op, dpb.ProfileDatasetResponse)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        request = epb.StreamEventsRequest(operation=op.name, no_follow=True)
        list(data.events.StreamEvents(request))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def direct_wide(data, dataset_id: str, n: int, threads: int) -> float:
    """N ProfileDataset calls from ``threads`` client threads at once (for information)."""
    from forgeline.v1 import data_service_pb2 as dpb

    def one(_):
        op = data.data.ProfileDataset(dpb.ProfileDatasetRequest(dataset_id=dataset_id))
        return data.wait(op, dpb.ProfileDatasetResponse)

    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(one, range(n)))
        return time.perf_counter() - start


def pipeline_yaml(dataset_id: str, n: int, chain: bool) -> str:
    lines = [
        "apiVersion: forgeline/v1",
        "kind: Pipeline",
        f"metadata: {{name: bench-{'chain' if chain else 'wide'}}}",
        "steps:",
    ]
    for i in range(1, n + 1):
        source = (
            f"${{{{ steps.p{i - 1:02d}.profile.dataset_id }}}}" if chain and i > 1 else dataset_id
        )
        lines += [
            f"  - name: p{i:02d}",
            "    call: data.ProfileDataset",
            f'    with: {{dataset_id: "{source}"}}',
        ]
    return "\n".join(lines) + "\n"


def through_gateway(gateway, pipelines, data, text: str, n: int) -> dict:
    """SubmitPipeline(no_cache) and Client.wait on the run; then its steps from GetPipelineRun
    and their data operations' times."""
    from forgeline.v1 import common_pb2
    from forgeline.v1 import pipeline_service_pb2 as ppb

    began = time.time()
    start = time.perf_counter()
    op = pipelines.SubmitPipeline(ppb.SubmitPipelineRequest(pipeline_yaml=text, no_cache=True))
    gateway.wait(op, ppb.SubmitPipelineResponse, timeout=600)
    total = time.perf_counter() - start
    ended = time.time()
    run = pipelines.GetPipelineRun(ppb.GetPipelineRunRequest(name=op.name)).run
    assert run.state == common_pb2.OPERATION_STATE_SUCCEEDED, run.message
    assert len(run.steps) == n and not any(s.cached for s in run.steps)
    steps = [(_seconds(s.start_time), _seconds(s.end_time)) for s in run.steps]
    ((run_created, run_end),) = data_times(gateway, [op.name])
    return {
        "total_s": total,
        "run": op.name,
        "began": began,
        "ended": ended,
        "run_created": run_created,
        "run_end": run_end,
        "steps": steps,
        "service": data_times(data, [s.operation for s in run.steps]),
    }


# --- report -------------------------------------------------------------------------------------


def machine() -> dict:
    import grpc

    return _common.machine(grpcio=grpc.__version__)


def spread(values: list[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_median": statistics.median(values),
        f"{prefix}_min": min(values),
        f"{prefix}_max": max(values),
    }


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def breakdown(chains: list[dict], directs: list[dict]) -> dict[str, float]:
    """Where a chain step's time goes, gateway and direct, medians in ms."""
    before, inside, after, gap, head, tail, step = [], [], [], [], [], [], []
    accepted, finish, notice = [], [], []
    for g in chains:
        for (s0, s1), (c0, c1) in zip(g["steps"], g["service"], strict=True):
            before.append(c0 - s0)
            inside.append(c1 - c0)
            after.append(s1 - c1)
            step.append(s1 - s0)
        gap += [b[0] - a[1] for a, b in zip(g["steps"], g["steps"][1:], strict=False)]
        head.append(g["steps"][0][0] - g["began"])
        tail.append(g["ended"] - g["steps"][-1][1])
        accepted.append(g["run_created"] - g["began"])
        finish.append(g["run_end"] - g["steps"][-1][1])
        notice.append(g["ended"] - g["run_end"])
    d_before, d_inside, d_after, d_call = [], [], [], []
    for d in directs:
        for (t0, t1), (c0, c1) in zip(d["calls"], d["service"], strict=True):
            d_before.append(c0 - t0)
            d_inside.append(c1 - c0)
            d_after.append(t1 - c1)
            d_call.append(t1 - t0)

    def polled(values: list[float]) -> float:
        return sum(v > POLLED_S for v in values) / len(values)

    return {
        "gateway_step_ms": median_ms(step),
        "gateway_step_before_submit_ms": median_ms(before),
        "gateway_step_in_service_ms": median_ms(inside),
        "gateway_step_after_service_ms": median_ms(after),
        "gateway_gap_between_steps_ms": median_ms(gap),
        "gateway_run_head_ms": median_ms(head),
        "gateway_run_head_accepted_ms": median_ms(accepted),
        "gateway_run_tail_ms": median_ms(tail),
        "gateway_run_tail_finish_ms": median_ms(finish),
        "gateway_run_tail_noticed_ms": median_ms(notice),
        "direct_call_ms": median_ms(d_call),
        "direct_call_before_create_ms": median_ms(d_before),
        "direct_call_in_service_ms": median_ms(d_inside),
        "direct_call_after_service_ms": median_ms(d_after),
        "gateway_steps_noticed_late_share": polled(after),
        "direct_calls_noticed_late_share": polled(d_after),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="N operations per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="repeats measured and dropped")
    parser.add_argument("--rows", type=int, default=200, help="rows of the tiny dataset")
    parser.add_argument("--direct-threads", type=int, default=4)
    bench_options(parser, repeats=10)
    args = parser.parse_args()
    if args.steps < 2 or args.repeats < 1 or args.warmup < 0:
        parser.error("--steps >= 2, --repeats >= 1, --warmup >= 0")

    from forgeline.client import Client
    from forgeline.v1 import data_service_pb2 as dpb
    from forgeline.v1 import pipeline_service_pb2_grpc

    started = time.perf_counter()
    n = args.steps
    with tempfile.TemporaryDirectory(prefix="forgeline-bench-gateway-") as tmp:
        tmp = Path(tmp)
        home, root = tmp / "home", tmp / "data"
        home.mkdir()
        root.mkdir()
        csv = root / "reviews.csv"
        csv.write_text(
            "text,label\n"
            + "".join(
                f"{WORDS[i % len(WORDS)]} {WORDS[i * 7 % len(WORDS)]} {i},{('neg', 'pos')[i % 2]}\n"
                for i in range(args.rows)
            ),
            encoding="utf-8",
        )
        data_svc = ServiceProcess("data", home, {"FORGELINE_DATA_ROOTS": str(root)})
        gw_svc = None
        try:
            gw_svc = ServiceProcess(
                "gateway",
                home,
                {
                    "FORGELINE_DATA_ROOTS": str(root),
                    "FORGELINE_ADDRESSES": json.dumps({"data": data_svc.address}),
                },
            )
            with Client(data_svc.address) as data, Client(gw_svc.address) as gateway:
                data.wait_ready()
                gateway.wait_ready()
                pipelines = pipeline_service_pb2_grpc.PipelineServiceStub(gateway.channel)
                op = data.data.IngestDataset(dpb.IngestDatasetRequest(source=str(csv)))
                dataset = data.wait(op, dpb.IngestDatasetResponse).dataset
                assert dataset.num_rows == args.rows, dataset
                dataset_id = dataset.artifact.id
                chain_text = pipeline_yaml(dataset_id, n, chain=True)
                wide_text = pipeline_yaml(dataset_id, n, chain=False)

                kept: dict[str, list] = {
                    k: [] for k in ("direct", "gateway", "direct_wide", "gateway_wide", "threads")
                }
                foreign = []
                for repeat in range(args.warmup + args.repeats):
                    load = ForeignLoad()
                    sides = {
                        "direct": lambda: direct_chain(data, dataset_id, n),
                        "gateway": lambda: through_gateway(gateway, pipelines, data, chain_text, n),
                        "direct_wide": lambda: direct_chain(data, dataset_id, n),
                        "gateway_wide": lambda: through_gateway(
                            gateway, pipelines, data, wide_text, n
                        ),
                        "threads": lambda: direct_wide(data, dataset_id, n, args.direct_threads),
                    }
                    order = list(sides)
                    if repeat % 2:  # alternate which side goes first
                        order = ["gateway", "direct", "gateway_wide", "direct_wide", "threads"]
                    got = {name: sides[name]() for name in order}
                    share = load.share()
                    warm = repeat < args.warmup
                    chain_oh = (got["gateway"]["total_s"] - got["direct"]["total_s"]) / n
                    wide_oh = (got["gateway_wide"]["total_s"] - got["direct_wide"]["total_s"]) / n
                    label = (
                        f"warm-up {repeat + 1}" if warm else f"repeat {repeat + 1 - args.warmup}"
                    )
                    print(
                        f"{label}: "
                        f"chain direct {got['direct']['total_s'] * 1000:7.1f} ms, "
                        f"gateway {got['gateway']['total_s'] * 1000:7.1f} ms "
                        f"({chain_oh * 1000:+6.1f} ms/step); wide direct "
                        f"{got['direct_wide']['total_s'] * 1000:7.1f} ms, gateway "
                        f"{got['gateway_wide']['total_s'] * 1000:7.1f} ms "
                        f"({wide_oh * 1000:+6.1f} ms/step); others' CPU {share:.0%}",
                        flush=True,
                    )
                    if warm:
                        continue
                    for name, value in got.items():
                        kept[name].append(value)
                    foreign.append(share)
                events_ms = stream_events_ms(data, dataset_id)
        finally:
            if gw_svc is not None:
                gw_svc.stop()
            data_svc.stop()

    def totals(name: str) -> list[float]:
        return [r if isinstance(r, float) else r["total_s"] for r in kept[name]]

    chain_oh = [
        (g - d) / n * 1000 for g, d in zip(totals("gateway"), totals("direct"), strict=True)
    ]
    wide_oh = [
        (g - d) / n * 1000
        for g, d in zip(totals("gateway_wide"), totals("direct_wide"), strict=True)
    ]
    metrics: dict[str, float] = {
        "steps": n,
        "repeats": args.repeats,
        "warmup_repeats": args.warmup,
        "dataset_rows": args.rows,
        **spread([t * 1000 for t in totals("direct")], "direct_total_ms"),
        **spread([t * 1000 for t in totals("gateway")], "gateway_total_ms"),
        **spread(chain_oh, "overhead_per_step_ms"),
        **spread([t * 1000 for t in totals("direct_wide")], "wide_direct_total_ms"),
        **spread([t * 1000 for t in totals("gateway_wide")], "wide_gateway_total_ms"),
        **spread(wide_oh, "wide_overhead_per_step_ms"),
        **spread(
            [t * 1000 for t in totals("threads")], f"wide_direct_{args.direct_threads}_threads_ms"
        ),
        **breakdown(kept["gateway"], kept["direct"]),
        "stream_events_no_follow_ms": events_ms,
        "benchmark_wall_s": time.perf_counter() - started,
    }
    # The overhead splits into a part every step pays and a part the run pays once.
    metrics["gateway_marginal_per_step_ms"] = (
        metrics["gateway_step_ms"]
        - metrics["direct_call_ms"]
        + metrics["gateway_gap_between_steps_ms"]
    )
    metrics["gateway_fixed_per_run_ms"] = (
        metrics["gateway_run_head_ms"] + metrics["gateway_run_tail_ms"]
    )
    goals = [{"metric": "overhead_per_step_ms_median", "op": "<=", "target": GOAL_MS}]
    notes = [
        "operation: data.ProfileDataset of a tiny ingested CSV; direct calls carry no request_id, "
        "gateway steps carry RUN/STEP as request_id (as the orchestrator sends)",
        "overhead_per_step_ms = (gateway total - direct total) / steps, per repeat; chain = each "
        "step references the previous one's response; wide = independent steps (gateway runs "
        "up to 4 at once) vs the same calls one after another",
        "both sides wait through WaitOperation, which the operation store's own write wakes "
        "(forgeline/operations.py OperationStore.wait_change); the *_noticed_late_share metrics "
        "count waits answered over POLLED_S after the service finished",
    ]
    notes.append(
        f"split of the chain overhead: {metrics['gateway_marginal_per_step_ms']:.1f} ms every "
        f"step pays (step {metrics['gateway_step_ms']:.1f} - direct call "
        f"{metrics['direct_call_ms']:.1f} + gap {metrics['gateway_gap_between_steps_ms']:.1f}) "
        f"and {metrics['gateway_fixed_per_run_ms']:.1f} ms the run pays once (head "
        f"{metrics['gateway_run_head_ms']:.1f}, tail {metrics['gateway_run_tail_ms']:.1f}, of "
        f"which {metrics['gateway_run_tail_noticed_ms']:.1f} is the client's WaitOperation "
        f"noticing the finished run); a direct call spends "
        f"{metrics['direct_call_after_service_ms']:.1f} of its {metrics['direct_call_ms']:.1f} ms "
        "after the service finished (WaitOperation noticing it)"
    )
    per_repeat_ms = {
        "direct_total_ms": [t * 1000 for t in totals("direct")],
        "gateway_total_ms": [t * 1000 for t in totals("gateway")],
        "overhead_per_step_ms": chain_oh,
        "wide_direct_total_ms": [t * 1000 for t in totals("direct_wide")],
        "wide_gateway_total_ms": [t * 1000 for t in totals("gateway_wide")],
        "wide_overhead_per_step_ms": wide_oh,
    }
    report = results(
        "gateway",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread={f"{key}_median": summarize(values) for key, values in per_repeat_ms.items()},
        noise=noise([{"repeat": share} for share in foreign]),
        notes=notes,
        per_repeat={
            "direct_total_ms": [t * 1000 for t in totals("direct")],
            "gateway_total_ms": [t * 1000 for t in totals("gateway")],
            "overhead_per_step_ms": chain_oh,
            "wide_direct_total_ms": [t * 1000 for t in totals("direct_wide")],
            "wide_gateway_total_ms": [t * 1000 for t in totals("gateway_wide")],
            "wide_overhead_per_step_ms": wide_oh,
            "gateway_step_durations_ms": [
                [(e - s) * 1000 for s, e in g["steps"]] for g in kept["gateway"]
            ],
        },
    )
    path = write_results(report, args.out)

    print()
    print(f"{n} ProfileDataset operations, {args.repeats} repeats (+{args.warmup} warm-up)")
    print(f"{'':<28}{'direct ms':>11}{'gateway ms':>12}{'overhead ms/step':>18}")
    for label, d, g, o in (
        (
            "chain (one after another)",
            "direct_total_ms",
            "gateway_total_ms",
            "overhead_per_step_ms",
        ),
        (
            "wide (independent)",
            "wide_direct_total_ms",
            "wide_gateway_total_ms",
            "wide_overhead_per_step_ms",
        ),
    ):
        print(
            f"{label:<28}{metrics[d + '_median']:>11.1f}{metrics[g + '_median']:>12.1f}"
            f"{metrics[o + '_median']:>10.1f} "
            f"[{metrics[o + '_min']:.1f}, {metrics[o + '_max']:.1f}]"
        )
    print()
    for key in (
        f"wide_direct_{args.direct_threads}_threads_ms_median",
        "gateway_step_ms",
        "gateway_step_before_submit_ms",
        "gateway_step_in_service_ms",
        "gateway_step_after_service_ms",
        "gateway_gap_between_steps_ms",
        "gateway_run_head_ms",
        "gateway_run_head_accepted_ms",
        "gateway_run_tail_ms",
        "gateway_run_tail_finish_ms",
        "gateway_run_tail_noticed_ms",
        "gateway_marginal_per_step_ms",
        "gateway_fixed_per_run_ms",
        "stream_events_no_follow_ms",
        "direct_call_ms",
        "direct_call_before_create_ms",
        "direct_call_in_service_ms",
        "direct_call_after_service_ms",
        "gateway_steps_noticed_late_share",
        "direct_calls_noticed_late_share",
        "benchmark_wall_s",
    ):
        print(f"{key:<42}{metrics[key]:>10.2f}")
    print(f"(all metrics: {path})")
    for note in report["notes"]:
        print(f"note: {note}")
    print_goals(goals, digits=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
