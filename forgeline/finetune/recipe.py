"""The fine-tuning recipe every Ray Train worker (or Ray Tune trial) runs, in named stages.

A run reads its shard of a Parquet dataset, builds the model from a local Hugging Face folder,
lets the finetune strategy plugin decide what trains, wraps it in DDP (gloo on CPU, NCCL on GPU),
and trains with AdamW and a linear warm-up. Rank 0 streams metrics to a named actor (metrics.py)
and writes checkpoints (the trainable weights as safetensors, the optimizer and scheduler state,
the step), each only once the service has stored the metrics it covers; a restarted worker group
resumes from the latest one. The finished model is written with
``save_pretrained`` (a full folder, or a PEFT adapter folder) next to its tokenizer.

``run_recipe`` reads top-down: the stages of ``FinetuneRecipe``, one method each. A session
(sessions.py) says where the recipe runs, data.py reads and batches the rows, and ``fit`` runs
the recipe on Ray Train.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from forgeline.finetune.data import (
    IGNORE,
    Encoded,
    LengthGroupedSampler,
    encode,
    encode_generative,
    read_rows,
)
from forgeline.finetune.metrics import wait_until_stored
from forgeline.finetune.sessions import Session, TrainSession
from forgeline.models import (
    DECODER_TASKS,
    INSTRUCTION,
    MANIFEST,
    SEQ2SEQ,
    SEQUENCE_CLASSIFICATION,
    Evaluation,
    load_model,
    perplexity_of,
)

if TYPE_CHECKING:
    import torch


class RecipeConfig(BaseModel):
    """Everything a worker needs; plain data, so it travels to any node."""

    model_config = ConfigDict(extra="forbid")

    task: str = SEQUENCE_CLASSIFICATION
    # Inputs (RECIPE_INPUTS) and the output are local paths, or locations in shared storage
    # (forgeline.storage) when the workers may run on other machines.
    model_path: str = Field(description="HF folder with the weights and the tokenizer.")
    finetune: str = "full"
    finetune_config: dict[str, Any] = Field(default_factory=dict)
    train_path: str = Field(description="Parquet file of the training rows.")
    text_column: str = "text"
    label_column: str = "label"
    # seq2seq and instruction: the columns by role (text, target; prompt, response; messages),
    # as forgeline.finetune.columns resolved them.
    columns: dict[str, str] = Field(default_factory=dict)
    eval_columns: dict[str, str] = Field(default_factory=dict)
    # seq2seq and instruction: a single-pass long_inputs plugin shortening each prompt (source
    # text) to the tokens its row leaves, or to input_token_budget when smaller ("": none).
    long_inputs: str = ""
    long_inputs_config: dict[str, Any] = Field(default_factory=dict)
    input_token_budget: int = 0
    # Optional held-out rows, scored by rank 0 after every epoch and at the end.
    eval_path: str = ""
    eval_text_column: str = "text"
    eval_label_column: str = "label"
    # Classification: label values (as strings) in class-index order.
    labels: list[str] = Field(default_factory=list)
    learning_rate: float = 5e-5
    batch_size: int = 16
    epochs: int = 1
    max_steps: int = 0
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    max_length: int = 128
    # Batches of texts of similar length (LengthGroupedSampler): less padding, same epoch.
    group_by_length: bool = False
    seed: int = 0
    bf16: bool = False
    checkpoint_every: int = 0  # optimizer steps; 0 = at the end of each epoch
    log_every: int = 1
    metrics_actor: str = ""  # name of a MetricsSink actor; "" = none
    # The run's folder in Ray storage when it is a local (or mounted) path: a restarted worker
    # group resumes from the newest complete checkpoint in it, even one reported just before a
    # failure and not yet registered by Ray Train's controller. "" = Ray's latest only.
    checkpoint_root: str = ""
    output_dir: str = Field(description="Where rank 0 writes the finished model.")
    # Distillation (the compression service): a classifier folder whose soft labels, at this
    # temperature, are mixed into the loss with weight distill_alpha (the hard labels' loss
    # weighs 1 - distill_alpha).
    teacher_path: str = ""
    distill_temperature: float = 2.0
    distill_alpha: float = 0.5
    # Continual learning (the memory service): a regularizers plugin keeping the model near its
    # starting weights, prepared on the old task's rows (a Parquet file with the same text and
    # label columns), with the state a previous update saved; it saves its own state into
    # <output_dir>/regularizer for the next update.
    regularizer: str = ""
    regularizer_config: dict[str, Any] = Field(default_factory=dict)
    old_path: str = ""
    regularizer_state: str = ""


# The config's fields that name what a worker reads.
RECIPE_INPUTS = (
    "model_path",
    "train_path",
    "eval_path",
    "old_path",
    "teacher_path",
    "regularizer_state",
)


def localized(config: RecipeConfig) -> RecipeConfig:
    """``config`` for this machine: each input in shared storage replaced by a local copy, and
    an output in shared storage by a local folder (``finish`` uploads it)."""
    import tempfile

    from forgeline import storage

    updates = {
        name: str(storage.localize(getattr(config, name)))
        for name in RECIPE_INPUTS
        if getattr(config, name)
    }
    if storage.is_remote(config.output_dir):
        updates["output_dir"] = tempfile.mkdtemp(prefix="forgeline-output-")
    return config.model_copy(update=updates)


def _trainable_state(model) -> dict[str, Any]:
    return {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def train_loop_per_worker(raw: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    run_recipe(RecipeConfig.model_validate(raw), TrainSession())


def run_recipe(config: RecipeConfig, session: Session) -> None:
    """The recipe on one rank, stage by stage. After every epoch rank 0 scores the eval rows
    and every rank reports the epoch's metrics with a checkpoint (mid-epoch checkpoints too when
    ``checkpoint_every`` is set); rank 0 writes the finished model, and its manifest with the
    final metrics, before the last report, so a trial stopped at its last report still has its
    model. The stages run in this order because each draws on torch's seeded generator in turn:
    the same seed gives the same run."""
    recipe = FinetuneRecipe(config, session)
    recipe.setup_model()
    recipe.setup_data()
    recipe.setup_optimizer()
    recipe.resume()
    recipe.setup_metrics()
    recipe.train()
    recipe.finish()


@dataclass
class _Tally:
    """An epoch's totals: the loss of its optimizer steps (their mean is the epoch's training
    loss) and its samples since it started (its throughput)."""

    loss: float = 0.0
    steps: int = 0
    samples: int = 0
    start: float = field(default_factory=time.perf_counter)


@dataclass
class _Window:
    """Samples and tokens since the last logged metric point (its throughput)."""

    samples: int = 0
    tokens: int = 0
    start: float = field(default_factory=time.perf_counter)


class FinetuneRecipe:
    """One rank's run, in the stages ``run_recipe`` calls top-down (torchtune's recipes are the
    model: plain stages over a config, no trainer hierarchy). Setup: ``setup_model``,
    ``setup_data``, ``setup_optimizer``, ``resume``, ``setup_metrics``. Training: ``train``
    runs ``train_epoch`` (``backward``, ``optimizer_step``, ``log_point``) and ``end_epoch``
    (``evaluate``, ``save_model``, ``save_checkpoint``). Last: ``finish``. The state the stages
    share lives on the instance, which lives as long as the run."""

    def __init__(self, config: RecipeConfig, session: Session) -> None:
        self.session = session
        self.rank, self.world = session.rank, session.world
        # The output as asked (maybe in shared storage), and the config for this machine.
        self.target, self.config = config.output_dir, localized(config)
        self.step, self.start_epoch = 0, 0
        self.final_eval: dict[str, Any] = {}  # the latest scores, for the manifest

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def done(self) -> bool:
        """Whether the schedule's last optimizer step is behind us."""
        return self.step >= self.total_steps

    # --- setup ------------------------------------------------------------------------------

    def setup_model(self) -> None:
        """Seeds torch; loads the tokenizer and the model; lets the finetune strategy decide
        what trains; prepares the regularizer (anchored at the starting weights) and the
        distillation teacher; wraps the model for the session (DDP on Ray Train)."""
        import torch
        from transformers import AutoTokenizer

        from forgeline import modelio
        from forgeline.registry import FinetuneContext, PluginRegistry

        config = self.config
        torch.manual_seed(config.seed)
        tokenizer = AutoTokenizer.from_pretrained(config.model_path, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = load_model(config.task, config.model_path, config.labels)
        if config.task in DECODER_TASKS and model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"  # positions count from a row's first token
        strategy = PluginRegistry().create(
            "finetune", config.finetune, config.finetune_config, "finetune"
        )
        ctx = FinetuneContext(
            task=config.task,
            model_path=config.model_path,
            tokenizer_path=config.model_path,
            max_length=config.max_length,
        )
        with modelio.CONSTRUCTION:  # a strategy's new weights (LoRA's A and B) are initialised here
            model = strategy.prepare(model, ctx)
        self.tokenizer = tokenizer
        self.unwrapped = model  # what is saved, scored and checkpointed (self.model may be DDP)
        self.regularizer = _regularizer(config, model, tokenizer)
        self.parameter_counts = {
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_parameters": sum(p.numel() for p in model.parameters()),
        }
        self.model = self.session.prepare(model)
        self.teacher = _teacher(config, self.device)

    def setup_data(self) -> None:
        """The training rows as this rank's batches (a seeded shard, grouped by length when
        asked), and the schedule: optimizer steps per epoch, in all, and the epochs they take."""
        from torch.utils.data import DataLoader, DistributedSampler
        from transformers import (
            DataCollatorForLanguageModeling,
            DataCollatorForSeq2Seq,
            DataCollatorWithPadding,
        )

        config, rank, world = self.config, self.rank, self.world
        self.data_counts: dict[str, int] = {}
        self.long_inputs = _long_inputs(config)
        if config.task in (INSTRUCTION, SEQ2SEQ):
            encoded = self.encoded(config.train_path, config.columns)
            examples = encoded.examples
            # What the truncation rule cut (rows are never dropped), in the run's metrics.
            self.data_counts = {"rows": len(examples), "truncated_rows": encoded.truncated}
            if self.long_inputs is not None:  # and what the long_inputs plugin shortened
                self.data_counts["shortened_rows"] = encoded.shortened
            collate = DataCollatorForSeq2Seq(self.tokenizer, label_pad_token_id=IGNORE)
        else:
            examples = encode(config, self.tokenizer)
            collate = (
                DataCollatorWithPadding(self.tokenizer)
                if config.task == SEQUENCE_CLASSIFICATION
                else DataCollatorForLanguageModeling(self.tokenizer, mlm=False)
            )
        self.collate = collate
        self.sampler = (
            LengthGroupedSampler(
                [len(e["input_ids"]) for e in examples],
                config.batch_size,
                num_replicas=world,
                rank=rank,
                seed=config.seed,
            )
            if config.group_by_length
            else DistributedSampler(
                examples,
                num_replicas=world,
                rank=rank,
                shuffle=True,
                seed=config.seed,
                drop_last=False,
            )
        )
        self.loader = DataLoader(
            examples, batch_size=config.batch_size, sampler=self.sampler, collate_fn=collate
        )
        self.steps_per_epoch = math.ceil(len(self.loader) / config.gradient_accumulation_steps)
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)

    def encoded(self, path: str, columns: dict[str, str]) -> Encoded:
        """A generative task's rows (train or held-out) as examples with their labels."""
        config = self.config
        return encode_generative(
            config.task,
            path,
            columns,
            self.tokenizer,
            config.max_length,
            long_inputs=self.long_inputs,
            input_token_budget=config.input_token_budget,
        )

    def setup_optimizer(self) -> None:
        """AdamW over the trainable weights, with a linear warm-up and decay over the schedule."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        config = self.config
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # fused: one kernel for the whole update (the default per-parameter loop costs ~60 ms of
        # a ~320 ms MiniLM step on a 2-core CPU).
        self.optimizer = torch.optim.AdamW(
            trainable, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
        warmup = max(config.warmup_steps, int(config.warmup_ratio * self.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, self.total_steps)

    def resume(self) -> None:
        """The trainable weights, optimizer, scheduler, step and epoch of the newest complete
        checkpoint (Ray's latest, or a newer one in the run's folder); a fresh start keeps 0."""
        import torch
        from safetensors.torch import load_file

        with _resume_folder(self.session.checkpoint(), self.config.checkpoint_root) as folder:
            if folder is None:
                return
            weights = load_file(os.path.join(folder, "trainable.safetensors"))
            self.unwrapped.load_state_dict(weights, strict=False)
            state = torch.load(os.path.join(folder, "optimizer.pt"), weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            meta = json.loads(Path(folder, "meta.json").read_text())
            self.step, self.start_epoch = meta["step"], meta["epoch"]

    def setup_metrics(self) -> None:
        """Tells the metrics sink where each rank runs and from which step; then keeps the sink,
        and the held-out rows, on rank 0 only: the other ranks push and score nothing."""
        config = self.config
        sink = self.session.metrics_sink(config.metrics_actor)
        if sink is not None:
            sink.placed(self.rank, self.world, self.session.node_id(), self.step)
        self.sink = sink if self.rank == 0 else None
        self.held_out = None
        if config.eval_path and self.rank == 0:
            self.held_out = (
                self.encoded(config.eval_path, config.eval_columns).examples
                if config.task in (INSTRUCTION, SEQ2SEQ)
                else read_rows(
                    config.eval_path,
                    config.eval_text_column,
                    config.eval_label_column,
                    config.task,
                )
            )

    # --- training ---------------------------------------------------------------------------

    def train(self) -> None:
        """Epoch after epoch (from a resumed run's epoch) up to the schedule's last step."""
        import torch

        self.autocast = torch.autocast(
            "cuda" if torch.cuda.is_available() else "cpu",
            dtype=torch.bfloat16,
            enabled=self.config.bf16,
        )
        self.model.train()
        self.window = _Window()
        for epoch in range(self.start_epoch, self.epochs):
            if self.done:
                break
            self.train_epoch(epoch)
            self.end_epoch(epoch)

    def train_epoch(self, epoch: int) -> None:
        """One pass over this rank's batches (a resumed run skips those it trained on), an
        optimizer step every ``gradient_accumulation_steps`` batches and a checkpoint every
        ``checkpoint_every`` steps; it stops at the schedule's last step."""
        config, loader = self.config, self.loader
        self.sampler.set_epoch(epoch)
        skip = (self.step - epoch * self.steps_per_epoch) * config.gradient_accumulation_steps
        self.tally = _Tally()
        for i, batch in enumerate(loader):
            if i < skip:
                continue  # resumed mid-epoch: these batches were already trained on
            loss = self.backward(batch)
            if (i + 1) % config.gradient_accumulation_steps and i + 1 != len(loader):
                continue
            at = epoch + (i + 1) / len(loader)
            self.optimizer_step(loss, at)
            if self.done:
                break
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save_checkpoint(epoch, self.epoch_metrics(at))

    def backward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's loss (with the teacher's and the regularizer's terms when configured,
        scaled for accumulation) and its gradients; counts its samples and tokens."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self.autocast:
            out = self.model(**batch)
            if self.teacher is None:
                loss = out.loss
            else:
                loss = _distill_loss(self.config, out, self.teacher, batch)
            if self.regularizer is not None:
                loss = loss + self.regularizer.penalty(self.unwrapped)
            loss = loss / self.config.gradient_accumulation_steps
        loss.backward()
        self.window.samples += batch["input_ids"].shape[0]
        self.tally.samples += batch["input_ids"].shape[0]
        self.window.tokens += int(batch["attention_mask"].sum())
        return loss

    def optimizer_step(self, loss: torch.Tensor, at: float) -> None:
        """Applies the accumulated gradients and advances the schedule; ``loss`` is the last
        batch's (scaled), ``at`` the epoch as a fraction."""
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        step_loss = float(loss) * self.config.gradient_accumulation_steps
        self.tally.loss += step_loss
        self.tally.steps += 1
        if self.sink is not None and self.step % self.config.log_every == 0:
            self.log_point(step_loss, at)

    def log_point(self, step_loss: float, at: float) -> None:
        """Rank 0 pushes the step's metric point, with the throughput since the last one."""
        elapsed = time.perf_counter() - self.window.start
        self.sink.push(
            self.step,
            {
                "loss": step_loss,
                "learning_rate": self.scheduler.get_last_lr()[0],
                "samples_per_second": self.window.samples * self.world / elapsed,
                "tokens_per_second": self.window.tokens * self.world / elapsed,
                "epoch": at,
                "progress": self.step / self.total_steps,
            },
        )
        self.window = _Window()

    def epoch_metrics(self, at: float) -> dict[str, float]:
        """The epoch so far: its mean training loss, progress and throughput."""
        elapsed = max(time.perf_counter() - self.tally.start, 1e-9)
        return {
            "loss": self.tally.loss / max(self.tally.steps, 1),
            "epoch": at,
            "progress": self.step / self.total_steps,
            "samples_per_second": self.tally.samples * self.world / elapsed,
            **self.parameter_counts,
            **self.data_counts,
        }

    def end_epoch(self, epoch: int) -> None:
        """The epoch's metrics and scores; after the last step the finished model, written
        before the last report (a trial stopped there keeps its model); then a checkpoint,
        unless checkpoints go by steps and the run goes on."""
        done = self.done
        at = self.step / self.steps_per_epoch if done else float(epoch + 1)
        metrics = {**self.epoch_metrics(at), **self.evaluate(at)}
        if self.sink is not None and self.data_counts:  # the rows and truncations, streamed
            self.sink.push(self.step, {k: float(v) for k, v in self.data_counts.items()})
        if done:
            self.save_model(metrics)
        if done or not self.config.checkpoint_every:
            self.save_checkpoint(epoch + 1, metrics)

    # --- evaluation and saving --------------------------------------------------------------

    def evaluate(self, epoch: float) -> dict[str, float]:
        """Rank 0 scores the held-out rows; the other ranks wait at their next collective."""
        if self.held_out is None:
            return {}
        from forgeline.models import evaluate

        if isinstance(self.held_out, list):  # a generative task's encoded examples
            scores = self.score_labels(self.held_out)
        else:
            scores = evaluate(
                self.unwrapped,
                self.tokenizer,
                self.held_out[0],
                self.held_out[1],
                self.config.task,
                batch_size=max(self.config.batch_size, 32),
                max_length=self.config.max_length,
            )
        self.unwrapped.train()
        self.final_eval = scores.as_dict()
        values = scores.scalars("eval_")
        if self.sink is not None:
            self.sink.push(self.step, {**values, "epoch": epoch})
        return values

    def score_labels(self, examples: list[dict[str, Any]]) -> Evaluation:
        """The loss per label token of held-out examples (a response's or a target's tokens
        only, as in training) and its perplexity, in eval mode without gradients."""
        import torch

        model, shift = self.unwrapped, self.config.task in DECODER_TASKS
        model.eval()
        nll, counted, size = 0.0, 0, max(self.config.batch_size, 32)
        with torch.no_grad():
            for start in range(0, len(examples), size):
                batch = self.collate(examples[start : start + size])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                labels = batch["labels"][:, 1:] if shift else batch["labels"]
                tokens = int((labels != IGNORE).sum())
                nll += float(model(**batch).loss) * tokens
                counted += tokens
        loss = nll / max(counted, 1)
        return Evaluation(num_examples=len(examples), loss=loss, perplexity=perplexity_of(loss))

    def save_checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        """Every rank reports ``metrics``; rank 0's report carries the checkpoint (trainable
        weights, optimizer and scheduler, step and epoch), once the metrics it covers are
        stored."""
        import torch
        from safetensors.torch import save_file

        with tempfile.TemporaryDirectory() as folder:
            chosen = None
            if self.rank == 0:
                save_file(
                    _trainable_state(self.unwrapped), os.path.join(folder, "trainable.safetensors")
                )
                torch.save(
                    {
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict(),
                    },
                    os.path.join(folder, "optimizer.pt"),
                )
                files = {p.name: p.stat().st_size for p in Path(folder).iterdir()}
                Path(folder, "meta.json").write_text(
                    json.dumps({"step": self.step, "epoch": epoch, "files": files})
                )
                chosen = folder
            if self.sink is not None:
                wait_until_stored(self.sink)  # a checkpoint never gets ahead of its metrics
            self.session.report(
                {**metrics, "step": self.step}, chosen, f"{CHECKPOINT_PREFIX}{self.step:09d}"
            )

    def save_model(self, metrics: dict[str, float]) -> None:
        """Rank 0 writes the finished model and its manifest (with the final metrics), and
        uploads it when the output is in shared storage."""
        if self.rank != 0:
            return
        from forgeline import storage

        config, output = self.config, Path(self.config.output_dir)
        self.unwrapped.save_pretrained(output, safe_serialization=True)
        self.tokenizer.save_pretrained(output)
        _carry_format(config.model_path, config.output_dir)
        if self.regularizer is not None:
            self.regularizer.save(output / "regularizer")
        write_manifest(
            output,
            config,
            self.final_eval,
            {**self.parameter_counts, "steps": self.step, "final_metrics": metrics},
        )
        if self.target != config.output_dir:  # shared storage: upload, then drop the local copy
            storage.upload(output, storage.Location(self.target))
            shutil.rmtree(config.output_dir, ignore_errors=True)

    def finish(self) -> None:
        """A run resumed after its last step (nothing left to train) has written no model in
        this attempt: rank 0 scores and writes it, unless a previous attempt did."""
        from forgeline import storage

        written = Path(self.target, MANIFEST).exists()
        if self.target != self.config.output_dir:
            written = storage.exists(storage.Location(self.target).child(MANIFEST))
        if not written and self.rank == 0:
            at = self.step / self.steps_per_epoch
            self.save_model({**self.parameter_counts, **self.evaluate(at), "progress": 1.0})


def _long_inputs(config: RecipeConfig):
    """The long_inputs plugin that shortens the prompts, or None."""
    if not config.long_inputs:
        return None
    from forgeline.registry import PluginRegistry

    return PluginRegistry().create(
        "long_inputs", config.long_inputs, config.long_inputs_config, "long_inputs"
    )


def _regularizer(config: RecipeConfig, model, tokenizer):
    """The regularizers plugin, prepared on the old task's rows, or None."""
    if not config.regularizer:
        return None
    from forgeline.registry import PluginRegistry, RegularizerContext

    plugin = PluginRegistry().create(
        "regularizers", config.regularizer, config.regularizer_config, "regularizer"
    )

    def old_batches():
        import torch

        if not config.old_path:
            return
        texts, labels = read_rows(
            config.old_path, config.text_column, config.label_column, config.task
        )
        index = {label: i for i, label in enumerate(config.labels)}
        device = next(model.parameters()).device
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            if labels is None:  # causal LM: the text itself, padding ignored
                batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            else:
                batch["labels"] = torch.tensor([index[v] for v in labels[start : start + 32]])
            yield {k: v.to(device) for k, v in batch.items()}

    previous = Path(config.regularizer_state) if config.regularizer_state else None
    plugin.prepare(model, RegularizerContext(old_batches=old_batches, previous=previous))
    return plugin


def _teacher(config: RecipeConfig, device):
    """The distillation teacher, frozen in eval mode, or None."""
    if not config.teacher_path:
        return None
    from forgeline import modelio

    teacher = modelio.load_torch(Path(config.teacher_path)).to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _distill_loss(config: RecipeConfig, out, teacher, batch):
    """Hinton et al.'s loss: KL divergence to the teacher's softened distribution (scaled by
    T squared, so its gradients keep their size) mixed with the hard labels' cross-entropy."""
    import torch
    import torch.nn.functional as F

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        target = teacher(**inputs).logits.float()
    t = config.distill_temperature
    soft = F.kl_div(
        F.log_softmax(out.logits.float() / t, dim=-1),
        F.softmax(target / t, dim=-1),
        reduction="batchmean",
    ) * (t * t)
    return config.distill_alpha * soft + (1 - config.distill_alpha) * out.loss


def _carry_format(source: str, output: str) -> None:
    """A pruned model trained on stays a pruned model: its shapes go with its weights."""
    from forgeline import modelio

    fmt = modelio.read_format(Path(source))
    if fmt.get("format") == modelio.HF_PRUNED:
        modelio.write_format(Path(output), {"format": modelio.HF_PRUNED, "layers": fmt["layers"]})


def write_manifest(
    folder: Path,
    config: RecipeConfig,
    evaluation: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """What a loader needs beside the weights: the task, the labels, the base model."""
    temporary = Path(folder, MANIFEST + ".tmp")
    temporary.write_text(
        json.dumps(
            {
                "task": config.task,
                "labels": config.labels,
                "base_model_path": config.model_path,
                "finetune": config.finetune,
                "finetune_config": config.finetune_config,
                "max_length": config.max_length,
                "evaluation": evaluation or {},
                **(extra or {}),
            },
            indent=2,
        )
    )
    os.replace(temporary, Path(folder, MANIFEST))  # never a torn manifest


CHECKPOINT_PREFIX = "checkpoint_step_"


def _complete(folder: Path) -> int:
    """The step of a fully written checkpoint folder, or -1 (torn, foreign or unreadable)."""
    try:
        meta = json.loads(Path(folder, "meta.json").read_text())
        for name, size in meta["files"].items():
            if Path(folder, name).stat().st_size != size:
                return -1
        return int(meta["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


@contextmanager
def _resume_folder(checkpoint, root: str):
    """The folder to resume from: Ray Train's latest checkpoint, or a newer complete one found
    in the run's storage folder; None for a fresh start."""
    found: list[tuple[int, Path]] = []
    if root and Path(root).is_dir():
        found = [(_complete(p), p) for p in Path(root).glob(f"{CHECKPOINT_PREFIX}*")]
    best = max(found, default=(-1, None))
    if checkpoint is None and best[0] < 0:
        yield None
        return
    if checkpoint is None:
        yield str(best[1])
        return
    with checkpoint.as_directory() as folder:
        yield str(best[1]) if best[0] > _complete(Path(folder)) else folder


def fit(
    config: RecipeConfig,
    *,
    num_workers: int,
    use_gpu: bool,
    cpus_per_worker: float,
    storage_path: str,
    run_name: str,
    max_failures: int = 0,
    keep_checkpoints: int = 2,
):
    """Runs the recipe on Ray Train and returns the Ray Train Result."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from forgeline import storage

    where: dict[str, Any] = {"storage_path": storage_path}
    if storage.is_remote(storage_path):  # e.g. S3: Ray writes through the pyarrow filesystem
        fs, path = storage.Location(storage_path).open()
        where = {"storage_path": path, "storage_filesystem": fs}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config.model_dump(),
        scaling_config=ScalingConfig(
            num_workers=num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            **where,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=keep_checkpoints),
        ),
    )
    return trainer.fit()


def fit_summary(config: RecipeConfig, **kwargs) -> dict[str, Any]:
    """fit() as a Ray task the service can cancel: returns plain data, not the Result."""
    result = fit(config, **kwargs)
    return {"step": int((result.metrics or {}).get("step", 0))}
