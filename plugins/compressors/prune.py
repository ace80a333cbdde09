"""Structured pruning: whole attention heads and FFN neurons, chosen by importance."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field

from forgeline import modelio
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.compressors import (
    CompressContext,
    CompressionTarget,
    Compressor,
    CompressResult,
    TrainRun,
)
from forgeline.errors import FailedPrecondition, InvalidArgument


class StructuredPrune(Compressor):
    """Removes the least important attention heads and FFN neurons of a BERT-style encoder, so
    the saved model is physically smaller and faster (not masked).

    Importance is the loss's first-order sensitivity to each head's and neuron's output on
    training rows (Michel et al., 2019), normalized per layer and ranked across layers; every
    layer keeps at least one head. A short fine-tuning on the training rows can follow.
    """

    name = "structured_prune"
    accepts = (modelio.HF, modelio.HF_PRUNED)

    class Config(PluginConfig):
        heads_fraction: float = Field(
            0.3, ge=0.0, lt=1.0, description="Share of all attention heads to remove."
        )
        neurons_fraction: float = Field(
            0.3, ge=0.0, lt=1.0, description="Share of all FFN (intermediate) neurons to remove."
        )
        neurons_multiple_of: int = Field(
            8,
            ge=1,
            le=256,
            description="Each layer keeps a multiple of this many FFN neurons (the nearest to "
            "what the ranking keeps): matrix kernels run faster on aligned widths.",
        )
        importance_rows: int = Field(
            512, ge=8, le=100_000, description="Training rows the importances are scored on."
        )
        batch_size: int = Field(16, ge=1, le=1024, description="Batch size of scoring and tuning.")
        finetune_epochs: int = Field(
            0, ge=0, le=20, description="Epochs of fine-tuning after pruning (0: none)."
        )
        learning_rate: float = Field(3e-5, gt=0, le=1, description="Fine-tuning learning rate.")
        num_workers: int = Field(1, ge=1, le=64, description="Ray Train workers of the tuning.")
        cpus_per_worker: float = Field(1.0, gt=0, description="CPUs of each tuning worker.")

    def output_format(self, input_format: str) -> str:
        return modelio.HF_PRUNED

    def check(self, target: CompressionTarget) -> None:
        if not modelio.encoder_layers(target.model):
            raise FailedPrecondition(
                f"{target.field}: structured_prune removes heads and neurons of BERT-style "
                f"encoders (BERT, RoBERTa, MiniLM, ...); this "
                f"{target.config.get('model_type', '')} model is laid out differently",
                reason="COMPRESSOR_NOT_APPLICABLE",
                metadata={"field": f"{target.field}.name"},
            )
        if not target.has_train_rows:
            raise InvalidArgument.for_field(
                "train", f"{target.field} (structured_prune) scores importances on training rows"
            )
        if self.config.heads_fraction == 0 and self.config.neurons_fraction == 0:
            raise InvalidArgument.for_field(
                f"{target.field}.config.heads_fraction",
                "heads_fraction and neurons_fraction are both 0: nothing would be pruned",
            )

    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        from transformers import AutoTokenizer

        model = modelio.load_torch(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        texts, labels = ctx.train_rows(self.config.importance_rows)
        ctx.progress(0.05, f"scoring heads and neurons on {len(texts)} rows")
        heads, neurons = importances(model, tokenizer, texts, labels, ctx, self.config.batch_size)
        keep_heads = _keep(heads, self.config.heads_fraction)
        keep_neurons = _keep(neurons, self.config.neurons_fraction, self.config.neurons_multiple_of)
        before = modelio.shapes(model)
        after = modelio.prune(model, list(zip(keep_heads, keep_neurons, strict=True)))
        details = {
            "heads_before": sum(s["heads"] for s in before),
            "heads_after": sum(s["heads"] for s in after),
            "neurons_before": sum(s["intermediate"] for s in before),
            "neurons_after": sum(s["intermediate"] for s in after),
            "layers": after,
        }
        if not self.config.finetune_epochs:
            modelio.save_pruned(model, output_dir)
            tokenizer.save_pretrained(output_dir)
            return CompressResult(details)
        pruned = ctx.work_dir / "pruned"
        modelio.save_pruned(model, pruned)
        tokenizer.save_pretrained(pruned)
        ctx.progress(0.3, f"fine-tuning for {self.config.finetune_epochs} epoch(s)")
        if ctx.train is None:
            raise FailedPrecondition("this service cannot train", reason="NO_TRAINING")
        metrics = ctx.train(
            TrainRun(
                model_dir=pruned,
                output_dir=output_dir,
                epochs=self.config.finetune_epochs,
                learning_rate=self.config.learning_rate,
                batch_size=self.config.batch_size,
                num_workers=self.config.num_workers,
                cpus_per_worker=self.config.cpus_per_worker,
            )
        )
        details["finetune_loss"] = metrics.get("loss", 0.0)
        return CompressResult(details)


def importances(model, tokenizer, texts, labels, ctx: CompressContext, batch_size: int):
    """Per layer: |dL/d gate| summed over batches, for a gate of 1 on each head's and each FFN
    neuron's output, each layer's scores divided by their L2 norm."""
    import torch

    layers = modelio.encoder_layers(model)
    head_gates = [torch.ones(x.heads, requires_grad=True) for x in layers]
    neuron_gates = [torch.ones(x.neurons, requires_grad=True) for x in layers]
    hooks = []
    for layer, hg, ng in zip(layers, head_gates, neuron_gates, strict=True):
        size = layer.head_size

        def gate_heads(module, args, hg=hg, size=size):
            return (args[0] * hg.repeat_interleave(size),)

        def gate_neurons(module, args, ng=ng):
            return (args[0] * ng,)

        hooks.append(layer.attention_output.dense.register_forward_pre_hook(gate_heads))
        hooks.append(layer.ffn_out.dense.register_forward_pre_hook(gate_neurons))
    index = {label: i for i, label in enumerate(ctx.labels)}
    head_scores = [torch.zeros(x.heads) for x in layers]
    neuron_scores = [torch.zeros(x.neurons) for x in layers]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for start in range(0, len(texts), batch_size):
            ctx.check_cancelled()
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=ctx.max_length,
                return_tensors="pt",
            )
            target = torch.tensor([index[v] for v in labels[start : start + batch_size]])
            model(**batch, labels=target).loss.backward()
            for scores, gates in ((head_scores, head_gates), (neuron_scores, neuron_gates)):
                for s, g in zip(scores, gates, strict=True):
                    s += g.grad.abs()
                    g.grad = None
    finally:
        for hook in hooks:
            hook.remove()

    def normalized(scores):
        return [(s / (s.norm() + 1e-12)).tolist() for s in scores]

    return normalized(head_scores), normalized(neuron_scores)


def _keep(scores: list[list[float]], fraction: float, multiple: int = 1) -> list[list[int]]:
    """Per layer, the indexes kept after removing the ``fraction`` lowest-scored units across
    all layers; every layer keeps at least one, and then the multiple of ``multiple`` nearest
    to its count (its best-scored units)."""
    ranked = sorted((s, layer, i) for layer, row in enumerate(scores) for i, s in enumerate(row))
    budget = math.floor(fraction * len(ranked))
    left = [len(row) for row in scores]
    for _, layer, _ in ranked:
        if budget <= 0:
            break
        if left[layer] > 1:
            left[layer] -= 1
            budget -= 1
    kept = []
    for row, count in zip(scores, left, strict=True):
        if multiple > 1 and count < len(row):
            count = min(len(row), max(multiple, round(count / multiple) * multiple))
        best = sorted(range(len(row)), key=lambda i: -row[i])[:count]
        kept.append(sorted(best))
    return kept
