"""Tiny trained text classifiers for the compressor suite and forgeline's own tests: a tiny BERT
trained with the real training recipe, in this process (no Ray), on a handful of food reviews.

torch and transformers are imported when a model is built or trained, so that importing the
suites stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeline.contracts.compressors import TrainRun
from forgeline.finetune.build import build_from_config
from forgeline.finetune.recipe import RecipeConfig, run_recipe
from forgeline.finetune.runner import compressor_recipe_config
from forgeline.finetune.sessions import LocalSession

TINY_BERT = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 64,
}
LABELS = ["neg", "pos"]
MAX_LENGTH = 32
GOOD = ["good food", "great taste", "fresh and tasty", "fast delivery", "lovely soup"]
BAD = ["cold food", "awful taste", "stale and salty", "slow delivery", "bland soup"]


def reviews(copies: int, offset: int = 0) -> tuple[list[str], list[str]]:
    """``copies`` copies of every GOOD ("pos") and BAD ("neg") review, numbered from ``offset``:
    the texts and their labels."""
    texts = [f"{t} {i + offset}" for i in range(copies) for t in GOOD + BAD]
    labels = ["pos" if t in GOOD else "neg" for _ in range(copies) for t in GOOD + BAD]
    return texts, labels


def write_rows(path: Path, texts: list[str], labels: list[str]) -> Path:
    """The rows as a parquet file with columns text and label, the recipe's input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts, "label": labels}), path)
    return path


def base_model(folder: Path, seed: int = 0) -> Path:
    """A random-init tiny BERT with a tokenizer trained on the reviews."""
    import torch

    torch.manual_seed(seed)
    texts, _ = reviews(4)
    return build_from_config("bert", TINY_BERT, texts, 120, folder)


def train_locally(config: RecipeConfig) -> dict[str, float]:
    """Runs the training recipe in this process; returns its last report."""
    session = LocalSession()
    run_recipe(config, session)
    return session.reports[-1]


def classifier(work: Path, finetune: str = "full", epochs: int = 15) -> Path:
    """A tiny classifier trained on the reviews (or a LoRA adapter on the tiny base)."""
    base = base_model(work / "base")
    texts, labels = reviews(6)
    rows = write_rows(work / "train.parquet", texts, labels)
    out = work / f"model-{finetune}"
    train_locally(
        RecipeConfig(
            model_path=str(base),
            finetune=finetune,
            finetune_config={"r": 4} if finetune == "lora" else {},
            train_path=str(rows),
            labels=LABELS,
            learning_rate=1e-2 if finetune == "lora" else 5e-3,
            batch_size=10,
            epochs=epochs,
            max_length=MAX_LENGTH,
            output_dir=str(out),
        )
    )
    return out


def run_config(run: TrainRun, train_path: Path) -> RecipeConfig:
    """The recipe's config for a compressor's training run on the rows at ``train_path``, as the
    compression service builds it."""
    return compressor_recipe_config(run, train_path, labels=LABELS, max_length=MAX_LENGTH)


def metadata(folder: Path, fmt: str = "hf") -> dict[str, Any]:
    """The model artifact metadata of a classifier folder the recipe wrote."""
    manifest = json.loads((folder / "forgeline_training.json").read_text())
    return {
        "format": fmt,
        "task": manifest["task"],
        "labels": manifest["labels"],
        "max_length": MAX_LENGTH,
    }
