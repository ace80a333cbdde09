"""Scores a trained model on a dataset: accuracy, macro F1 and the confusion matrix for
classification; loss and perplexity for causal language modelling."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from forgeline import modelio
from forgeline.services.training.recipe import (
    CAUSAL_LM,
    SEQUENCE_CLASSIFICATION,
    load_model,
    read_manifest,
)


@dataclass
class Evaluation:
    num_examples: int
    loss: float
    accuracy: float = 0.0
    f1_macro: float = 0.0
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # row: true, column: predicted
    perplexity: float = 0.0

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """The headline numbers of this task, e.g. {"eval_accuracy": 0.93, ...}."""
        if self.labels:
            names = {"loss": self.loss, "accuracy": self.accuracy, "f1_macro": self.f1_macro}
        else:
            names = {"loss": self.loss, "perplexity": self.perplexity}
        return {prefix + k: float(v) for k, v in names.items()}

    def as_dict(self) -> dict:
        return asdict(self)


def score_classification(
    truth: list[int], predicted: list[int], names: list[str], *, loss: float = 0.0
) -> Evaluation:
    """Accuracy, macro F1 and the confusion matrix of predicted class indexes against the true
    ones; ``names`` are the labels in class-index order."""
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    return Evaluation(
        num_examples=len(truth),
        loss=loss,
        accuracy=float(accuracy_score(truth, predicted)),
        f1_macro=float(f1_score(truth, predicted, average="macro", zero_division=0)),
        labels=list(names),
        confusion=confusion_matrix(truth, predicted, labels=list(range(len(names))))
        .astype(np.int64)
        .tolist(),
    )


def load_trained(folder: Path, task: str = "", base_path: str = ""):
    """A model saved by the recipe: a full folder, or a PEFT adapter on its base model. The
    task, labels and base come from the folder's manifest unless given."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    manifest = read_manifest(folder)
    task = task or manifest.get("task", SEQUENCE_CLASSIFICATION)
    modelio.check_safe(folder)  # an adapter folder too (its base: in load_model)
    with modelio.CONSTRUCTION:
        if (folder / "adapter_config.json").exists():
            from peft import PeftModel

            base = load_model(
                task, base_path or manifest["base_model_path"], manifest.get("labels", [])
            )
            return PeftModel.from_pretrained(base, folder)
        auto = (
            AutoModelForSequenceClassification
            if task == SEQUENCE_CLASSIFICATION
            else (AutoModelForCausalLM)
        )
        return auto.from_pretrained(folder, local_files_only=True)


def class_probabilities(
    model, tokenizer, texts: list[str], *, batch_size: int = 32, max_length: int = 128
):
    """A classifier's softmax over its classes for each text (float32 numpy, one row per text,
    columns in class-index order), in eval mode without gradients."""
    import numpy as np
    import torch

    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            rows.append(torch.softmax(model(**batch).logits.float(), dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.num_labels), np.float32)


def merge_adapter(adapter: Path, base: Path, output: Path, task: str) -> None:
    """Writes an adapter merged into its base model as a full folder, with its tokenizer."""
    from transformers import AutoTokenizer

    model = load_trained(adapter, task, base_path=str(base))
    model.merge_and_unload().save_pretrained(output, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter, local_files_only=True).save_pretrained(output)


def evaluate(
    model,
    tokenizer,
    texts: list[str],
    labels: list[str] | None,
    task: str,
    *,
    batch_size: int = 32,
    max_length: int = 128,
) -> Evaluation:
    """Runs ``model`` over ``texts`` (in eval mode, no gradients) and scores it."""
    import torch

    if task == SEQUENCE_CLASSIFICATION:
        import numpy as np

        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        index = {name: i for i, name in enumerate(names)}
        truth = [index[str(v)] for v in labels]
        probabilities = class_probabilities(
            model, tokenizer, texts, batch_size=batch_size, max_length=max_length
        )
        picked = probabilities[np.arange(len(truth)), truth] if truth else np.zeros(0)
        loss = float(-np.log(np.maximum(picked, 1e-12)).mean()) if truth else 0.0
        return score_classification(truth, probabilities.argmax(-1).tolist(), names, loss=loss)
    model.eval()
    if task == CAUSAL_LM:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        nll, counted = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                target = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
                out = model(**batch, labels=target)
                tokens = int((target[:, 1:] != -100).sum())
                nll += float(out.loss) * tokens
                counted += tokens
        loss = nll / max(counted, 1)
        # A diverged model's loss overflows exp (past ~709): its perplexity is infinite.
        perplexity = math.exp(loss) if loss < math.log(sys.float_info.max) else math.inf
        return Evaluation(num_examples=len(texts), loss=loss, perplexity=perplexity)
    raise ValueError(f"task {task!r} cannot be evaluated yet")
