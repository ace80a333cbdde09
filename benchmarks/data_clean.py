"""normalize_text + dedup_exact + zscore_outliers on 1,000,000 text rows: the data service vs a
plain in-process pyarrow/pandas script doing the same, side by side in one run.

    python benchmarks/data_clean.py [--rows N] [--seed S] [--repeats 3] [--out PATH]

Writes benchmarks/results/data_clean.json (rows/s of both, their ratio, peak memory of both, and
whether the outputs are identical). Goals: ratio >= 0.8, peak memory <= 2x, identical output.
Each side runs in its own process so that peak memory (VmHWM) is its own; the service's peak is
reset right before each clean (``/proc/PID/clear_refs``), so its ingest does not count.

A repetition is one baseline process cleaning the rows, then one CleanDataset of the same rows
on the data service (started and fed once); ``--repeats`` of them run interleaved, and every
metric is the median over them with its spread in the JSON (goals are judged on the medians).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    bench_options,
    fold,
    interleave,
    noise,
    print_goals,
    results,
    write_results,
)

BASELINE = r"""
import resource, sys, time
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
source, target = sys.argv[1], sys.argv[2]
start = time.perf_counter()
table = pq.read_table(source)
text = pc.utf8_normalize(table["text"], "NFKC")
text = pc.utf8_lower(text)
text = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))
table = table.set_column(table.schema.get_field_index("text"), "text", text)
first = ~table.select(["text"]).to_pandas(types_mapper=None)["text"].duplicated().to_numpy()
table = table.filter(pa.array(first))
lengths = pc.utf8_length(table["text"]).to_numpy().astype(np.float64)
z = np.abs((lengths - lengths.mean()) / lengths.std())
table = table.filter(pa.array(z <= 3.0))
pq.write_table(table, target)
seconds = time.perf_counter() - start
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
print(seconds, peak, table.num_rows)
"""


def make_rows(n: int, seed: int, path: Path) -> None:
    """n review-like rows: mixed case and width, repeated sentences, a few very long ones."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array(
        "the food was good great cold late fast slow noodles rice soup delivery driver "
        "price portion taste fresh spicy salty sweet 好吃 太慢 味道 外卖 很快 一般 推荐".split()
    )
    lengths = rng.integers(4, 18, size=n)
    picks = rng.integers(0, len(words), size=lengths.sum())
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts = [" ".join(words[picks[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for i in rng.choice(n, size=n // 5, replace=False):  # 20% repeat an earlier sentence
        texts[i] = texts[rng.integers(0, n)].upper()
    for i in rng.choice(n, size=n // 50, replace=False):  # full-width, spaced-out variants
        texts[i] = "  ".join(texts[i]).translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    for i in rng.choice(n, size=200, replace=False):
        texts[i] = texts[i] * 40  # length outliers
    table = pa.table({"text": texts, "label": rng.integers(0, 2, size=n)})
    pq.write_table(table, path)


def machine() -> dict:
    import pyarrow

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return _common.machine(pyarrow=pyarrow.__version__, torch=torch_version)


def vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(fh.read().split("VmHWM:")[1].split()[0]) * 1024


class DataService:
    """``forgeline serve data`` as a process of its own, holding the rows ingested once."""

    def __init__(self, source: Path, home: Path) -> None:
        from forgeline.client import Client
        from forgeline.v1 import data_service_pb2 as pb

        env = {
            **os.environ,
            "FORGELINE_HOME": str(home),
            "FORGELINE_DATA_ROOTS": str(source.parent),
            "FORGELINE_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeline", "serve", "data", "--port", "0"],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        try:
            port = int(self.proc.stdout.readline().decode().rsplit(":", 1)[1])
            self.client = Client(f"127.0.0.1:{port}")
            self.client.wait_ready()
            op = self.client.data.IngestDataset(pb.IngestDatasetRequest(source=str(source)))
            self.dataset_id = self.client.wait(op, pb.IngestDatasetResponse).dataset.artifact.id
        except BaseException:
            self.stop()
            raise

    def clean(self) -> tuple[float, int, Path]:
        """(seconds, peak bytes, output file) of one CleanDataset of the ingested rows."""
        from forgeline.v1 import common_pb2
        from forgeline.v1 import data_service_pb2 as pb

        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS: measure the clean only
        start = time.perf_counter()
        op = self.client.data.CleanDataset(
            pb.CleanDatasetRequest(
                dataset_id=self.dataset_id,
                cleaners=[
                    common_pb2.PluginSpec(name=n)
                    for n in ("normalize_text", "dedup_exact", "zscore_outliers")
                ],
            )
        )
        result = self.client.wait(op, pb.CleanDatasetResponse)
        seconds = time.perf_counter() - start
        return (
            seconds,
            vm_hwm(self.proc.pid),
            Path(result.dataset.artifact.uri.removeprefix("file://")),
        )

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        self.proc.terminate()
        self.proc.wait(30)


def run_baseline(source: Path, target: Path) -> tuple[float, int, Path]:
    """(seconds, peak bytes, output file) of the plain script in a process of its own."""
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), int(out[1]), target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    bench_options(parser)
    args = parser.parse_args()
    import pyarrow.parquet as pq

    per_repetition = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "rows.parquet"
        make_rows(args.rows, args.seed, source)
        service = DataService(source, tmp / "home")
        runs = itertools.count()
        try:
            rounds = interleave(
                {
                    "baseline": lambda: run_baseline(source, tmp / f"baseline{next(runs)}.parquet"),
                    "service": service.clean,
                },
                args.repeats,
            )
        finally:
            service.stop()
        for done in rounds.results:
            base_seconds, base_peak, baseline_out = done["baseline"]
            svc_seconds, svc_peak, svc_out = done["service"]
            per_repetition.append(
                {
                    "rows_in": args.rows,
                    "rows_out": pq.read_metadata(svc_out).num_rows,
                    "service_rows_per_s": args.rows / svc_seconds,
                    "baseline_rows_per_s": args.rows / base_seconds,
                    "ratio": base_seconds / svc_seconds,
                    "service_peak_mb": svc_peak / 2**20,
                    "baseline_peak_mb": base_peak / 2**20,
                    "peak_memory_ratio": svc_peak / base_peak,
                    "identical_output": float(
                        pq.read_table(svc_out).equals(pq.read_table(baseline_out))
                    ),
                }
            )

    metrics, spread = fold(per_repetition)
    goals = [
        {"metric": "ratio", "op": ">=", "target": 0.8},
        {"metric": "peak_memory_ratio", "op": "<=", "target": 2.0},
        {"metric": "identical_output", "op": ">=", "target": 1.0},
    ]
    report = results(
        "data_clean",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(rounds.foreign),
    )
    path = write_results(report, args.out)
    width = max(map(len, metrics))
    for key, value in metrics.items():
        seen = spread.get(key)
        span = f"  [{seen['min']:,.3f} .. {seen['max']:,.3f}]" if seen else ""
        print(f"{key:<{width}}  {value:,.3f}{span}")
    print(f"median of {args.repeats} repetitions; written to {path}")
    print_goals(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
