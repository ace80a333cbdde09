"""The finetune contract: a FinetuneStrategy decides which weights of a model train."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from forgeline.contracts.base import Plugin

TASKS = ("sequence_classification", "causal_lm", "seq2seq", "instruction")


@dataclass(frozen=True)
class FinetuneContext:
    """What a strategy may need beside the model: the task and where the model came from."""

    task: str = "sequence_classification"  # one of TASKS
    # Local folder of the pretrained model and its tokenizer ("" for a model built from config).
    model_path: str = ""
    tokenizer_path: str = ""
    # Longest input in tokens the run will feed (0: unknown).
    max_length: int = 0


class FinetuneStrategy(Plugin, ABC):
    """Decides which weights of a model train: all of them, an adapter, or a learned prompt."""

    kind = "finetune"
    # True when the result is saved as a PEFT adapter folder (PeftModel.from_pretrained loads it);
    # False for a full save_pretrained folder.
    produces_adapter: ClassVar[bool] = False
    # The learning rate used when a request leaves it unset (adapters want larger ones).
    default_learning_rate: ClassVar[float] = 5e-5

    def check(self, model: Any, ctx: FinetuneContext) -> None:
        """Refuses a model this strategy cannot apply to (InvalidArgument naming the config
        field), before any worker starts. The default accepts every model."""

    @abstractmethod
    def prepare(self, model: Any, ctx: FinetuneContext) -> Any:
        """The module to train: ``model`` itself with some weights frozen, or a PEFT wrapper."""
