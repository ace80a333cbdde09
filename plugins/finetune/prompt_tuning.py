"""Prompt tuning: a few learned virtual tokens before the input (peft PromptTuningConfig)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.finetune import FinetuneContext, FinetuneStrategy
from forgeline.errors import InvalidArgument
from forgeline.plugins.finetune.peft_common import peft_task_type


class PromptTuning(FinetuneStrategy):
    """Learns virtual prompt tokens (and the classification head); saves a PEFT adapter."""

    name = "prompt_tuning"
    produces_adapter = True
    default_learning_rate = 3e-2

    class Config(PluginConfig):
        num_virtual_tokens: int = Field(
            20, ge=1, le=512, description="How many virtual tokens are prepended to the input."
        )
        init_text: str = Field(
            "",
            description="Initialise the virtual tokens from the embeddings of this text (e.g. "
            '"Classify the sentiment of this review:"); empty: random initialisation.',
        )

    def check(self, model: Any, ctx: FinetuneContext) -> None:
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(
            model.config, "n_positions", None
        )
        needed = self.config.num_virtual_tokens + ctx.max_length
        if limit and ctx.max_length and needed > limit:
            raise InvalidArgument.for_field(
                "finetune.config.num_virtual_tokens",
                f"{self.config.num_virtual_tokens} virtual tokens + max_sequence_length "
                f"{ctx.max_length} = {needed} exceeds the model's {limit} positions",
            )
        if self.config.init_text and not ctx.tokenizer_path:
            raise InvalidArgument.for_field(
                "finetune.config.init_text",
                "initialising from text needs the model's tokenizer, and this model has none",
            )

    def prepare(self, model: Any, ctx: FinetuneContext) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

        by_text = bool(self.config.init_text)
        config = PromptTuningConfig(
            task_type=peft_task_type(ctx.task),
            num_virtual_tokens=self.config.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if by_text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=self.config.init_text or None,
            tokenizer_name_or_path=ctx.tokenizer_path if by_text else None,
        )
        return get_peft_model(model, config)
