"""No pickle in a model folder is ever loaded. The training service's own guard looked for any
``*.safetensors`` and stopped there: a folder with a stray ``dummy.safetensors`` and a malicious
``pytorch_model.bin`` reached ``torch.load`` in a Ray worker. One kernel check
(``forgeline.modelio.check_safe``) runs wherever a service reads a model folder and refuses any
pickle in it, by name and by content, with PICKLE_REFUSED naming the file within the folder."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from forgeline import modelio
from forgeline.artifacts import Lineage
from forgeline.errors import FailedPrecondition
from forgeline.finetune.build import build_from_config
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb

TINY_BERT = {
    "num_hidden_layers": 1,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 128,
}


class Payload:
    """Unpickling it creates the folder ``marker``: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def evil(marker: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps(Payload(marker), protocol=protocol)


def torch_zip(marker: Path) -> bytes:
    """torch.save's layout: a zip whose ``archive/data.pkl`` is the pickle."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", evil(marker))
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny BERT built from config and saved with safetensors, with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    texts = [f"good food {i}" for i in range(10)] + [f"cold soup {i}" for i in range(10)]
    build_from_config("bert", TINY_BERT, texts, 80, folder)
    assert (folder / "model.safetensors").exists()
    return folder


def copy_with(model: Path, to: Path, files: dict[str, bytes]) -> Path:
    shutil.copytree(model, to)
    for name, data in files.items():
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        (to / name).write_bytes(data)
    return to


def refused(folder: Path, field: str = "model_id") -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as caught:
        modelio.check_safe(folder, field)
    assert caught.value.reason == "PICKLE_REFUSED"
    assert str(folder) not in caught.value.message  # named within the folder, not by server path
    return caught.value


# --- the kernel check ---------------------------------------------------------------------------


def test_the_reported_folder_is_refused(tiny_model, tmp_path):
    marker = tmp_path / "ran"
    folder = copy_with(
        tiny_model,
        tmp_path / "m",
        {"dummy.safetensors": b"stray", "pytorch_model.bin": evil(marker)},
    )
    error = refused(folder)
    assert error.metadata["file"] == "pytorch_model.bin"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("model.safetensors", "protocol 4"),  # a pickle wearing a safe name
        ("model-00002-of-00002.json", "protocol 2"),  # a shard an index file could name
        ("tokenizer.model", "protocol 5"),
        ("weights.data", "torch zip"),
        ("notes.txt", "protocol 0"),  # no magic number at all
        ("sub/dir/extra", "protocol 1"),
        ("README.md", "protocol 0, cut after its import"),  # pickle runs opcodes as it reads
    ],
)
def test_a_pickle_is_refused_by_content_whatever_its_name(tiny_model, tmp_path, name, content):
    marker = tmp_path / "ran"
    data = {
        "protocol 0": evil(marker, 0),
        "protocol 1": evil(marker, 1),
        "protocol 2": evil(marker, 2),
        "protocol 4": evil(marker, 4),
        "protocol 5": evil(marker, 5),
        "torch zip": torch_zip(marker),
        "protocol 0, cut after its import": evil(marker, 0)[:-6] + b"\xff\xfe",
    }[content]
    if name == "model.safetensors":
        (tmp_path / "m").mkdir()
        folder = copy_with(tiny_model, tmp_path / "m" / "x", {})
        (folder / name).unlink()
        (folder / name).write_bytes(data)
    else:
        folder = copy_with(tiny_model, tmp_path / "m", {name: data})
    assert refused(folder, "model.path").metadata == {"field": "model.path", "file": name}
    assert not marker.exists()


@pytest.mark.parametrize("name", ["optimizer.pt", "rng_state.pth", "x.pkl", "y.ckpt", "z.bin"])
def test_a_pickle_name_is_refused_whatever_it_holds(tiny_model, tmp_path, name):
    folder = copy_with(tiny_model, tmp_path / "m", {f"checkpoint-1/{name}": b"{}"})
    assert refused(folder).metadata["file"] == f"checkpoint-1/{name}"


def test_safe_files_that_look_like_pickles_are_not(tiny_model, tmp_path):
    """No false alarm: a safetensors header whose length starts with the protocol-2 magic
    (0x0280 bytes), text and code files, a zip without a pickle, float data."""
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    header += b" " * (0x280 - len(header))
    text_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(text_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    import numpy as np

    folder = copy_with(
        tiny_model,
        tmp_path / "m",
        {
            "extra.safetensors": struct.pack("<Q", len(header)) + header,
            "modeling_tiny.py": b"import os\nimport torch\n\nclass Tiny:\n    pass\n",
            "chat_template.jinja": b"{% for m in messages %}{{ m.content }}{% endfor %}",
            "assets.zip": text_zip.read_bytes(),
            "model.onnx.data": np.linspace(-3, 3, 4096, dtype=np.float32).tobytes(),
        },
    )
    modelio.check_safe(folder)
    assert not modelio.is_pickle(folder / "extra.safetensors")


# --- through a real service ---------------------------------------------------------------------


def train_request(sandbox, model: pb.ModelSource) -> pb.TrainModelRequest:
    return pb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=sandbox.dataset_id),
        model=model,
        hyper_parameters=common_pb2.HyperParameters(max_steps=1),
        output_name="never",
    )


@pytest.mark.parametrize("source", ["path", "artifact"])
@pytest.mark.parametrize("layout", ["beside the weights", "instead of the weights"])
def test_training_refuses_the_folder_before_any_worker_starts(
    training_sandbox, tiny_model, tmp_path, source, layout
):
    marker = tmp_path / "ran"
    folder = copy_with(
        tiny_model,
        training_sandbox.root / f"{source}-{layout.replace(' ', '-')}",
        {"dummy.safetensors": b"stray", "pytorch_model.bin": evil(marker)},
    )
    if layout == "instead of the weights":  # what transformers falls back to torch.load for
        (folder / "model.safetensors").unlink()
    if source == "path":
        model, field = pb.ModelSource(path=str(folder)), "model.path"
    else:
        record = training_sandbox.store.commit_dir(
            folder, kind="model", name=folder.name, metadata={"format": "hf"}, lineage=Lineage()
        )
        model, field = pb.ModelSource(artifact_id=record.id), "model.artifact_id"
    client = training_sandbox.client
    with pytest.raises(FailedPrecondition) as caught:
        client.training.TrainModel(train_request(training_sandbox, model))
    assert caught.value.reason == "PICKLE_REFUSED"
    assert caught.value.metadata == {"field": field, "file": "pytorch_model.bin"}
    assert not marker.exists()
    # Refused at submit: no operation was created, so nothing was scheduled on Ray.
    from google.longrunning import operations_pb2

    listed = client.operations.ListOperations(operations_pb2.ListOperationsRequest())
    assert not [op for op in listed.operations if "never" in str(op.metadata)]
