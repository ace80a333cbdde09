"""Elastic weight consolidation (Kirkpatrick et al., 2017), and its online form (Schwarz et
al., 2018): a quadratic penalty keeping each weight near its old value in proportion to how
much the old task's predictions depend on it (the diagonal Fisher information)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.regularizers import Regularizer, RegularizerContext

STATE_FILE = "ewc_fisher.safetensors"


class EWC(Regularizer):
    """Penalises moving the weights the old task relies on: lambda/2 * sum F (w - w_old)^2, with
    F the diagonal Fisher information estimated on the old task's rows."""

    name = "ewc"

    class Config(PluginConfig):
        strength: float = Field(
            10.0,
            ge=0,
            description="lambda: how strongly the old weights are held. With the normalized "
            "Fisher (mean 1), 10 kept MiniLM's old-task accuracy while it learned a new domain; "
            "100 already held it too firmly to learn.",
        )
        fisher_samples: int = Field(
            256,
            ge=1,
            le=1_000_000,
            description="Old rows the Fisher information is estimated on (one gradient each).",
        )
        online: bool = Field(
            False,
            description="Online EWC for a sequence of tasks: add this task's Fisher to the "
            "previous update's (decayed by gamma) instead of replacing it.",
        )
        gamma: float = Field(
            1.0, ge=0, le=1, description="Online EWC: how much of the previous Fisher is kept."
        )
        normalize: bool = Field(
            True,
            description="Divide the Fisher information by its mean over all weights, so lambda "
            "does not depend on how confident the model is on the old rows (a model that fits "
            "them well has a tiny Fisher, and an unnormalized lambda must then be huge).",
        )

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self.anchor: dict[str, Any] = {}
        self.fisher: dict[str, Any] = {}
        self.samples = 0
        self.tasks = 1  # the tasks whose Fisher information is summed (online EWC)

    def prepare(self, model: Any, ctx: RegularizerContext) -> None:
        import torch

        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.anchor = {n: p.detach().clone() for n, p in params.items()}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()  # no dropout: the gradients of the model as it predicts
        count = 0
        for batch in ctx.old_batches():
            for i in range(len(batch["labels"])):
                if count >= self.config.fisher_samples:
                    break
                model.zero_grad(set_to_none=True)
                one = {k: v[i : i + 1] for k, v in batch.items()}
                model(**one).loss.backward()  # -log p(y|x) of the true label (empirical Fisher)
                for n, p in params.items():
                    if p.grad is not None:
                        fisher[n] += p.grad.detach() ** 2
                count += 1
            if count >= self.config.fisher_samples:
                break
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        self.samples = count
        self.fisher = {n: f / max(count, 1) for n, f in fisher.items()}
        if self.config.normalize:
            size = sum(f.numel() for f in self.fisher.values())
            mean = sum(float(f.sum()) for f in self.fisher.values()) / max(size, 1)
            if mean > 0:
                self.fisher = {n: f / mean for n, f in self.fisher.items()}
        if self.config.online and ctx.previous is not None:
            previous = _load(ctx.previous)
            for n, f in previous.items():
                if n in self.fisher and f.shape == self.fisher[n].shape:
                    self.fisher[n] += self.config.gamma * f
            if previous:
                meta = Path(ctx.previous) / "ewc.json"
                before = json.loads(meta.read_text()).get("tasks", 1) if meta.exists() else 1
                self.tasks = int(before) + 1

    def penalty(self, model: Any) -> Any:
        terms = [
            (self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
            for n, p in model.named_parameters()
            if n in self.fisher
        ]
        return 0.5 * self.config.strength * sum(terms) if terms else 0.0

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({n: f.contiguous() for n, f in self.fisher.items()}, str(folder / STATE_FILE))
        (folder / "ewc.json").write_text(
            json.dumps(
                {"fisher_samples": self.samples, "tasks": self.tasks, **self.config.model_dump()}
            )
        )


def _load(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    path = Path(folder) / STATE_FILE
    return load_file(str(path)) if path.exists() else {}


class NoRegularizer(Regularizer):
    """No penalty: plain fine-tuning on the new data (with replay, if any)."""

    name = "none"

    def prepare(self, model: Any, ctx: RegularizerContext) -> None:
        return None

    def penalty(self, model: Any) -> Any:
        return 0.0
