"""Full fine-tuning: every weight trains (optionally not the embeddings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.finetune import FinetuneContext, FinetuneStrategy


class FullFinetune(FinetuneStrategy):
    """Trains all weights of the model; the result is a full save_pretrained folder."""

    name = "full"
    produces_adapter = False

    class Config(PluginConfig):
        freeze_embeddings: bool = Field(
            False,
            description="Keep the input embeddings (token, position, type) fixed; they hold "
            "most parameters of a small model and rarely need to move for classification.",
        )

    def prepare(self, model: Any, ctx: FinetuneContext) -> Any:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        if self.config.freeze_embeddings:
            embeddings = model.get_input_embeddings()
            for parameter in embeddings.parameters():
                parameter.requires_grad_(False)
            # Position / token-type tables sit beside the word embeddings in most encoders.
            owner = getattr(model, model.base_model_prefix, model)
            for module_name in ("embeddings", "wpe"):
                module = getattr(owner, module_name, None)
                if module is not None:
                    for parameter in module.parameters():
                        parameter.requires_grad_(False)
        return model
