"""forgeline.model_import: a GGUF file or a Hugging Face folder becomes a model artifact once per
source digest, loadable like a trained one; what is not a model is refused from its header, naming
the field, before any weight is read."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from forgeline.artifacts import ArtifactStore, sha256_file
from forgeline.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from forgeline.model_import import ModelImporter, default_name
from forgeline.models import CAUSAL_LM, MANIFEST, ModelRepository, read_manifest
from forgeline.paths import PathValidator
from tests.tiny_llm import CHAT_TEMPLATE, tiny_llama_folder, tiny_llama_gguf

PRODUCER = "test/ImportModel"


@pytest.fixture
def place(tmp_path: Path):
    home, root = tmp_path / "home", tmp_path / "data"
    root.mkdir()
    store = ArtifactStore(home / "artifacts")
    importer = ModelImporter(store, PathValidator([root], stores=[home]))
    yield store, importer, root
    store.close()


def test_a_gguf_file_becomes_a_model_artifact_that_loads_and_generates(place):
    store, importer, root = place
    source = tiny_llama_gguf(root / "tiny.gguf")

    imported = importer.run("tiny.gguf", producer=PRODUCER, operation="operations/x")

    record = imported.model
    assert not imported.cached and record.kind == "model" and record.name == "tiny"
    assert imported.architecture == "LlamaForCausalLM" and imported.parameters > 0
    assert record.metadata["format"] == "hf" and record.metadata["task"] == CAUSAL_LM
    assert record.metadata["chat_template"] is True
    assert record.lineage.config["source_sha256"] == sha256_file(source)
    assert record.lineage.config["source_file"] == "tiny.gguf"
    assert record.lineage.producer == PRODUCER and record.lineage.operation == "operations/x"
    folder = store.verify(record)
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", MANIFEST} <= names
    assert not any(n.endswith((".gguf", ".bin")) for n in names)
    assert read_manifest(folder)["task"] == CAUSAL_LM

    repository = ModelRepository(store)
    model, tokenizer, task = repository.load(repository.model_record(record.id))
    assert task == CAUSAL_LM and tokenizer.chat_template == CHAT_TEMPLATE
    assert model.num_parameters() == imported.parameters
    prompt = torch.tensor([[1, 5, 6, 7]])
    out = model.generate(input_ids=prompt, max_new_tokens=3, do_sample=False, min_new_tokens=3)
    assert out.shape == (1, 7) and int(out.max()) < tokenizer.vocab_size


def test_the_same_bytes_imported_again_return_the_first_artifact(place):
    store, importer, root = place
    tiny_llama_gguf(root / "tiny.gguf")
    first = importer.run("tiny.gguf", producer=PRODUCER)
    (root / "elsewhere").mkdir()
    shutil.copy(root / "tiny.gguf", root / "elsewhere" / "copy.gguf")

    again = importer.run("elsewhere/copy.gguf", "another-name", producer=PRODUCER)

    assert again.cached and again.model.id == first.model.id
    assert (again.architecture, again.parameters) == (first.architecture, first.parameters)
    assert [r.id for r in store.list(kind="model")] == [first.model.id]


def test_a_hugging_face_folder_is_imported_with_its_tokenizer(place):
    store, importer, root = place
    tiny_llama_folder(root / "llama")

    imported = importer.run(str(root / "llama"), "tiny-llama", producer=PRODUCER)

    assert imported.model.name == "tiny-llama" and imported.model.metadata["task"] == CAUSAL_LM
    assert imported.architecture == "LlamaForCausalLM"
    assert imported.model.metadata["source_format"] == "hf"
    model, tokenizer, _ = ModelRepository(store).load(imported.model)
    assert tokenizer.chat_template == CHAT_TEMPLATE and model.config.num_hidden_layers == 2
    assert importer.run("llama", producer=PRODUCER).cached


def refused(importer, raw: str, error_type, *words: str):
    with pytest.raises(error_type) as caught:
        importer.inspect(raw)
    message = caught.value.message
    assert message.startswith("source_path: "), message
    assert all(w in message for w in words), message
    return caught.value


def test_what_is_not_a_model_is_refused_naming_the_field(place, tmp_path):
    store, importer, root = place
    (root / "notes.gguf").write_text("hello, not a model")
    error = refused(importer, "notes.gguf", InvalidArgument, "not a GGUF file")
    assert [v.field for v in error.violations] == ["source_path"]
    assert str(root) not in error.message  # no server path in a message

    (root / "cut.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 12)
    refused(importer, "cut.gguf", InvalidArgument, "GGUF header", "cannot be read")

    tiny_llama_gguf(root / "alien.gguf", architecture="no-such-arch")
    refused(importer, "alien.gguf", InvalidArgument, "general.architecture", "no-such-arch")

    tiny_llama_gguf(root / "anonymous.gguf", architecture="")
    refused(importer, "anonymous.gguf", InvalidArgument, "no general.architecture")

    tiny_llama_gguf(root / "empty.gguf", tensors=False)
    refused(importer, "empty.gguf", InvalidArgument, "no tensors")

    (root / "folder").mkdir()
    refused(importer, "folder", InvalidArgument, "no config.json")

    from transformers import BertConfig, BertModel

    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    BertModel(BertConfig(vocab_size=40, intermediate_size=64, **tiny)).save_pretrained(
        root / "bert"
    )
    refused(importer, "bert", InvalidArgument, "not a decoder-only", "nor an encoder-decoder")

    outside = tiny_llama_gguf(tmp_path / "outside.gguf")
    error = refused(importer, str(outside), PermissionDenied, "outside the allowed roots")
    assert error.reason == "PATH_OUTSIDE_ROOTS"
    assert store.list(kind="model") == []  # nothing was made


def test_pickles_are_refused_before_anything_loads_them(place):
    store, importer, root = place
    folder = tiny_llama_folder(root / "pickled")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    error = refused(importer, "pickled", FailedPrecondition, "pytorch_model.bin", "pickle")
    assert error.reason == "PICKLE_REFUSED"

    (root / "model.gguf").write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    assert refused(importer, "model.gguf", FailedPrecondition, "pickle").reason == (
        "PICKLE_REFUSED"
    )
    assert store.list(kind="model") == []


def test_output_names_and_default_names():
    assert default_name(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "SmolLM2-135M-Instruct.Q4_1"
    assert default_name(Path("my model (v2)")) == "my-model-v2-"


def test_the_task_follows_the_architecture(place):
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        T5Config,
        T5ForConditionalGeneration,
    )

    _, importer, root = place
    config = T5Config(vocab_size=40, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16)
    T5ForConditionalGeneration(config).save_pretrained(root / "t5")
    tiny_llama_folder(root / "llama")
    assert importer.inspect("t5").task == "seq2seq"
    assert importer.inspect("llama").task == CAUSAL_LM
    BertForSequenceClassification(
        BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(root / "classifier")
    assert importer.inspect("classifier").task == "sequence_classification"
