"""Scores a trained model on a dataset: accuracy, macro F1 and the confusion matrix for
classification; loss and perplexity for causal language modelling."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

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

    model.eval()
    if task == SEQUENCE_CLASSIFICATION:
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        index = {name: i for i, name in enumerate(names)}
        truth = [index[str(v)] for v in labels]
        predicted, total_loss = [], 0.0
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                target = torch.tensor(truth[start : start + batch_size])
                out = model(**batch, labels=target)
                total_loss += float(out.loss) * len(target)
                predicted += out.logits.argmax(-1).tolist()
        return score_classification(truth, predicted, names, loss=total_loss / max(len(texts), 1))
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
        return Evaluation(num_examples=len(texts), loss=loss, perplexity=math.exp(loss))
    raise ValueError(f"task {task!r} cannot be evaluated yet")
