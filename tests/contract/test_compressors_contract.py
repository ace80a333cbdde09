"""Every installed compressor, forgeline's own and third parties', against the contract.

A compressor gets a tiny trained BERT classifier (the real training recipe, in this process)
and must accept it in ``check``, write a folder of the format it declares from
``output_format``, with weights in safetensors or ONNX only, that forgeline.modelio loads and
runs: one finite logit per label for every input, agreeing with the original on most inputs.
Training runs (distillation, fine-tuning after pruning) get the recipe in this process too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from forgeline import modelio  # noqa: E402
from forgeline.contracts.compressors import CompressContext, CompressionTarget, Compressor, TrainRun  # noqa: E402
from forgeline.models import skeleton  # noqa: E402
from forgeline.registry import PluginRegistry, config_schema, contract_problem  # noqa: E402
from forgeline.services.compression.jobs import recipe_config  # noqa: E402
from tests.contract.compress_harness import (  # noqa: E402
    LABELS,
    classifier,
    reviews,
    train_locally,
    write_rows,
)

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("compressors")]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return classifier(tmp_path_factory.mktemp("teacher"))


def make(name: str) -> Compressor:
    cls = REGISTRY.get("compressors", name)
    return cls(cls.Config.model_validate(cls.contract_config() or {}))


def context(work: Path) -> CompressContext:
    texts, labels = reviews(3, offset=100)
    rows = write_rows(work / "rows.parquet", texts, labels)

    def train(run: TrainRun) -> dict[str, float]:
        return train_locally(recipe_config(run, rows, "text", "label", LABELS, 32))

    scratch = work / "scratch"
    scratch.mkdir()
    return CompressContext(
        task="sequence_classification",
        labels=tuple(LABELS),
        max_length=32,
        seed=0,
        work_dir=scratch,
        train_rows=lambda n: (texts[:n], labels[:n]),
        train=train,
    )


@pytest.mark.parametrize("name", NAMES)
def test_it_fulfils_the_contract_and_documents_its_config(name):
    cls = REGISTRY.get("compressors", name)
    assert contract_problem("compressors", name, cls) is None
    assert cls.description()
    assert config_schema(cls)["type"] == "object"
    assert cls.accepts and set(cls.accepts) <= {"hf", "hf_pruned", "hf_int8", "onnx"}


@pytest.mark.parametrize("name", NAMES)
def test_it_compresses_a_tiny_classifier_into_a_safe_runnable_folder(name, teacher, tmp_path):
    compressor = make(name)
    config = transformers.AutoConfig.from_pretrained(teacher)
    if "hf" not in compressor.accepts:
        pytest.skip(f"{name} takes {compressor.accepts} models only")
    compressor.check(
        CompressionTarget(
            format="hf",
            config=config.to_dict(),
            model=skeleton(config, "sequence_classification", LABELS),
            field="compressors[0]",
            has_train_rows=True,
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    result = compressor.compress(teacher, out, context(tmp_path))
    assert isinstance(result.details, dict)
    assert modelio.folder_format(out) == compressor.output_format("hf")
    modelio.check_safe(out)  # safetensors or ONNX weights, no pickle

    texts, _ = reviews(2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
    inputs = dict(tokenizer(texts, padding=True, return_tensors="np"))
    got = modelio.load_classifier(out).logits(inputs)
    assert got.shape == (len(texts), len(LABELS)) and np.isfinite(got).all()
    expected = modelio.load_classifier(teacher).logits(inputs)
    agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert agree >= 0.6, f"{name} changed {1 - agree:.0%} of the predictions"
