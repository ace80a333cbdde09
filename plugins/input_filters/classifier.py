"""A text-classification model trained on the platform (spam, toxicity...) as a safety check:
a text matches when the model gives one of the configured classes at least the threshold.

``ClassifierCheck`` is the implementation; the input filter here and the output rule in
``forgeline.plugins.output_rules.classifier`` are that check under each kind.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.input_filters import InputFilter, SafetyContext, TextCheck, TextMatch
from forgeline.errors import FailedPrecondition, InvalidArgument


class ClassifierCheck(TextCheck):
    """Whole-text verdicts of a text-classification model (the base of both kinds' plugin)."""

    default_action = "block"

    class Config(PluginConfig):
        model_id: str = Field(
            ...,
            min_length=1,
            description="The text-classification model artifact (id, name or name@version) "
            "trained on the platform, e.g. a spam or toxicity model; HF, int8 or ONNX.",
        )
        labels: list[str] = Field(
            ...,
            min_length=1,
            description="The classes that count as a match, as the model names them (its "
            'config\'s id2label), e.g. ["spam"] or ["1"].',
        )
        threshold: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description="A text matches a class when the model's probability of it is at least "
            "this.",
        )
        max_length: int = Field(
            128,
            ge=2,
            description="Tokens the model reads of each text (longer texts are truncated); "
            "capped at what the model can take.",
        )
        batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass.")

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._tokenizer: Any = None
        self._columns: list[tuple[str, int]] = []  # (label, class index) of each watched label
        self._max_length = self.config.max_length
        # Fast tokenizers refuse concurrent calls that change truncation and padding, and a
        # torch module is not promised to be re-entrant: one forward pass at a time.
        self._lock = threading.Lock()

    @classmethod
    def contract_config(cls) -> dict:
        return {"model_id": "contract-model", "labels": ["spam"]}

    def prepare(self, ctx: SafetyContext) -> None:
        from transformers import AutoConfig, AutoTokenizer

        from forgeline.modelio import load_classifier

        folder = ctx.model_folder(self.config.model_id, "config.model_id")
        model_config = AutoConfig.from_pretrained(folder, local_files_only=True)
        names = [str(model_config.id2label[i]) for i in sorted(model_config.id2label)]
        unknown = [label for label in self.config.labels if label not in names]
        if unknown:
            raise InvalidArgument.for_field(
                "config.labels",
                f"{', '.join(map(repr, unknown))} not a class of {self.config.model_id}; "
                f"the model knows: {', '.join(names)}",
            )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        limits = [
            self.config.max_length,
            getattr(model_config, "max_position_embeddings", None),
            getattr(tokenizer, "model_max_length", None),
        ]
        with self._lock:
            self._max_length = min(n for n in limits if isinstance(n, int) and n > 0)
            self._columns = [(label, names.index(label)) for label in self.config.labels]
            self._tokenizer = tokenizer
            self._model = load_classifier(folder)

    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        import numpy as np

        if self._model is None:
            raise FailedPrecondition(
                f"the {self.name} check of {self.config.model_id} was not prepared; "
                "call prepare() before find()",
                reason="CHECK_NOT_PREPARED",
            )
        found: list[list[TextMatch]] = []
        size = self.config.batch_size
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            with self._lock:
                inputs = self._tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="np",
                )
                logits = np.asarray(self._model.logits(dict(inputs)), dtype=np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probabilities = np.exp(logits)
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            for text, row in zip(batch, probabilities, strict=True):
                found.append(
                    [
                        TextMatch(0, len(text), label, float(row[index]))
                        for label, index in self._columns
                        if row[index] >= self.config.threshold
                    ]
                )
        return found


class ClassifierFilter(ClassifierCheck, InputFilter):
    """Blocks user texts a platform-trained classifier (spam, toxicity...) flags."""

    name = "classifier"
