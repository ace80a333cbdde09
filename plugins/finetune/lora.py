"""LoRA: low-rank adapters on chosen linear layers (peft LoraConfig); the base stays frozen."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.finetune import FinetuneContext, FinetuneStrategy
from forgeline.errors import InvalidArgument
from forgeline.plugins.finetune.peft_common import peft_task_type


class LoraFinetune(FinetuneStrategy):
    """Trains rank-r adapters on the attention (or chosen) layers; saves a PEFT adapter."""

    name = "lora"
    produces_adapter = True
    default_learning_rate = 5e-4

    class Config(PluginConfig):
        r: int = Field(8, ge=1, le=1024, description="Rank of the update matrices.")
        alpha: float = Field(
            16.0, gt=0, description="Scaling numerator: updates are scaled by alpha / r."
        )
        dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
        target_modules: list[str] | None = Field(
            None,
            description="Names (or name suffixes) of the layers that get adapters, e.g. "
            '["query", "value"]. Default: PEFT\'s choice for the architecture.',
        )
        bias: Literal["none", "all", "lora_only"] = Field(
            "none", description="Which biases train as well."
        )
        modules_to_save: list[str] = Field(
            default_factory=list,
            description="Extra modules trained in full and saved with the adapter (the "
            "classification head is always included for classification).",
        )

    def _targets(self, model: Any) -> list[str] | None:
        """The layers named in the config, else PEFT's defaults for the architecture, else the
        model's own query/value projections found by their usual names (e.g. LongT5's q, v)."""
        if self.config.target_modules is not None:
            return self.config.target_modules
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type)
        if known is not None:
            return known
        found = [name for name in ATTENTION_PROJECTIONS if name in _linear_names(model)]
        return found or None

    def check(self, model: Any, ctx: FinetuneContext) -> None:
        linear = sorted(_linear_names(model))
        targets = self._targets(model)
        if targets is None:
            raise InvalidArgument.for_field(
                "finetune.config.target_modules",
                f"PEFT has no default LoRA targets for model type {model.config.model_type!r}; "
                f"name them, e.g. from the linear layers: {', '.join(linear)}",
            )
        names = [name for name, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise InvalidArgument.for_field(
                "finetune.config.target_modules",
                f"{missing} match no layer of this {model.config.model_type} model; its linear "
                f"layers are: {', '.join(linear)}",
            )

    def prepare(self, model: Any, ctx: FinetuneContext) -> Any:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            task_type=peft_task_type(ctx.task),
            r=self.config.r,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=self._targets(model),
            bias=self.config.bias,
            modules_to_save=self.config.modules_to_save or None,
        )
        return get_peft_model(model, config)


# Query/value projections (LoRA's usual targets) by the names architectures give them, for a
# model type PEFT has no defaults for.
ATTENTION_PROJECTIONS = ("q_proj", "v_proj", "q", "v", "query", "value", "c_attn")


def _linear_names(model: Any) -> set[str]:
    """The last name of every linear layer (GPT-2's Conv1D included) of ``model``."""
    import torch

    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv1d)
        or type(module).__name__ == "Conv1D"
    }
