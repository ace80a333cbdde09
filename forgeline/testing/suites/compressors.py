"""The compressor contract, over every compressor to certify (fixture ``compressors_plugin``).

Running this suite certifies a compressor: it is found through its entry point and gets a tiny
BERT classifier trained with the real training recipe (fixture ``forgeline_tiny_classifier``);
it must accept the model in ``check``, write a folder of the format it declares from
``output_format``, with weights in safetensors or ONNX only, that forgeline.modelio loads and
runs: one finite logit per label for every input, agreeing with the original on most inputs.
Training runs it asks for (distillation, fine-tuning after pruning) get the recipe in this
process too. A compressor whose defaults cannot run overrides the ``contract_config``
classmethod. torch and transformers are imported when a test runs (a skip where they are
missing), so that importing every suite stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgeline.contracts.compressors import CompressContext, CompressionTarget, TrainRun
from forgeline.registry import config_schema, contract_problem
from forgeline.testing import classifiers
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_contract_and_documents_its_config",
    "test_compresses_a_tiny_classifier_into_a_safe_runnable_folder",
]

FORMATS = {"hf", "hf_pruned", "hf_int8", "onnx"}


def context(work: Path) -> CompressContext:
    """What the compression service gives a compressor, over held-out reviews in ``work``."""
    texts, labels = classifiers.reviews(3, offset=100)
    rows = classifiers.write_rows(work / "rows.parquet", texts, labels)

    def train(run: TrainRun) -> dict[str, float]:
        return classifiers.train_locally(classifiers.run_config(run, rows))

    scratch = work / "scratch"
    scratch.mkdir()
    return CompressContext(
        task="sequence_classification",
        labels=tuple(classifiers.LABELS),
        max_length=classifiers.MAX_LENGTH,
        seed=0,
        work_dir=scratch,
        train_rows=lambda n: (texts[:n], labels[:n]),
        train=train,
    )


def test_fulfils_the_contract_and_documents_its_config(compressors_plugin):
    cls = compressors_plugin
    assert contract_problem("compressors", cls.name, cls) is None
    assert cls.description(), "the docstring's first paragraph is its description"
    schema = json.loads(json.dumps(config_schema(cls)))
    assert schema["type"] == "object"
    assert cls.accepts and set(cls.accepts) <= FORMATS, cls.accepts


def test_compresses_a_tiny_classifier_into_a_safe_runnable_folder(
    compressors_plugin, forgeline_tiny_classifier, tmp_path
):
    np = pytest.importorskip("numpy")
    transformers = pytest.importorskip("transformers")
    from forgeline import modelio
    from forgeline.models import skeleton

    teacher = forgeline_tiny_classifier
    compressor = contract_instance(compressors_plugin)
    if "hf" not in compressor.accepts:
        pytest.skip(f"{compressor.name} takes {compressor.accepts} models only")
    config = transformers.AutoConfig.from_pretrained(teacher)
    compressor.check(
        CompressionTarget(
            format="hf",
            config=config.to_dict(),
            model=skeleton(config, "sequence_classification", classifiers.LABELS),
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

    texts, _ = classifiers.reviews(2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
    inputs = dict(tokenizer(texts, padding=True, return_tensors="np"))
    got = modelio.load_classifier(out).logits(inputs)
    assert got.shape == (len(texts), len(classifiers.LABELS)) and np.isfinite(got).all()
    expected = modelio.load_classifier(teacher).logits(inputs)
    agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert agree >= 0.6, f"{compressor.name} changed {1 - agree:.0%} of the predictions"
