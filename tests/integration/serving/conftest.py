"""A serving service and a safety service (its audit log) on loopback ports, with tiny
random-init classifiers in the serving store: an HF model, its ONNX export, two LoRA adapters on
it with different heads, an adapter of another base, and a model folder holding a pickle."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from forgeline import modelio
from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.finetune.build import build_from_config
from forgeline.models import SEQUENCE_CLASSIFICATION
from forgeline.registry import CompressContext, PluginRegistry
from forgeline.v1 import serving_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings
from tests.fixtures import TINY_BERT, Workspace, ready_client, started

SERVED_BERT = {
    **TINY_BERT,
    "max_position_embeddings": 64,
    # Wider than BERT's 0.02, so a random-init model's answers depend visibly on the text.
    "initializer_range": 0.2,
}
LABELS = ["neg", "pos"]
TEXTS = [
    "good food",
    "cold soup and a slow delivery",
    "mail me at jo@example.com please",
    "my password is hunter2",
    "fresh and tasty",
    "awful taste",
]
MAX_PREDICT_TEXTS = 16


@dataclass
class Models:
    hf: ArtifactRecord
    onnx: ArtifactRecord
    adapter_a: ArtifactRecord
    adapter_b: ArtifactRecord
    foreign_adapter: ArtifactRecord  # trained on another base
    pickled: ArtifactRecord


def tiny_classifier(work: Path, seed: int) -> Path:
    """A random-init 2-layer BERT classifier with a tokenizer trained on TEXTS."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    raw = build_from_config("bert", SERVED_BERT, TEXTS * 4, 120, work / f"raw-{seed}")
    model = AutoModelForSequenceClassification.from_pretrained(
        raw, id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)}
    )
    out = work / f"classifier-{seed}"
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(raw).save_pretrained(out)
    return out


def lora_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter of ``base`` whose weights and classifier head are drawn from ``seed``."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base)
    peft = get_peft_model(
        model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"])
    )
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                parameter.normal_(0, 0.3)
    peft.save_pretrained(out)
    return out


def onnx_export(folder: Path, work: Path) -> Path:
    """The classifier exported by the onnx_export compressor, with its tokenizer and labels."""
    from transformers import AutoTokenizer

    out, scratch = work / "onnx", work / "onnx-scratch"
    out.mkdir()
    scratch.mkdir()
    exporter = PluginRegistry().create(
        "compressors", "onnx_export", {"optimize": False, "quantize": False}, "compressor"
    )
    exporter.compress(
        folder,
        out,
        CompressContext(
            task=SEQUENCE_CLASSIFICATION,
            labels=tuple(LABELS),
            max_length=32,
            seed=0,
            work_dir=scratch,
            train_rows=lambda n: (TEXTS[:n], []),
        ),
    )
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    modelio.write_format(out, {"task": SEQUENCE_CLASSIFICATION, "labels": LABELS})
    return out


def commit_model(store: ArtifactStore, folder: Path, name: str, fmt: str) -> ArtifactRecord:
    return store.commit_dir(
        folder,
        kind="model",
        name=name,
        metadata={
            "format": fmt,
            "task": SEQUENCE_CLASSIFICATION,
            "labels": LABELS,
            "max_length": 32,
        },
        lineage=Lineage(),
    )


def commit_adapter(store: ArtifactStore, folder: Path, name: str, base: ArtifactRecord):
    return store.commit_dir(
        folder,
        kind="adapter",
        name=name,
        metadata={
            "format": "peft_adapter",
            "task": SEQUENCE_CLASSIFICATION,
            "labels": LABELS,
            "base_artifact_id": base.id,
            "max_length": 32,
        },
        lineage=Lineage(),
    )


def make_models(store: ArtifactStore, work: Path) -> Models:
    import torch

    hf_folder = tiny_classifier(work, seed=0)
    other_folder = tiny_classifier(work, seed=1)
    onnx_folder = onnx_export(hf_folder, work)
    a = lora_adapter(hf_folder, work / "adapter-a", seed=10)
    b = lora_adapter(hf_folder, work / "adapter-b", seed=11)
    foreign = lora_adapter(other_folder, work / "adapter-foreign", seed=12)
    pickled = shutil.copytree(hf_folder, work / "pickled")
    torch.save({"anything": torch.zeros(1)}, pickled / "pytorch_model.bin")
    hf = commit_model(store, shutil.copytree(hf_folder, work / "hf-copy"), "tiny-hf", "hf")
    other = commit_model(store, other_folder, "tiny-other", "hf")
    return Models(
        hf=hf,
        onnx=commit_model(store, onnx_folder, "tiny-onnx", "onnx"),
        adapter_a=commit_adapter(store, a, "tiny-lora-a", hf),
        adapter_b=commit_adapter(store, b, "tiny-lora-b", hf),
        foreign_adapter=commit_adapter(store, foreign, "tiny-lora-foreign", other),
        pickled=commit_model(store, pickled, "tiny-pickled", "hf"),
    )


@pytest.fixture(scope="session")
def safety_service(tmp_path_factory) -> Iterator[Workspace]:
    yield from started(tmp_path_factory, "safety")


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serving-home")


@pytest.fixture(scope="session")
def models(serving_home, tmp_path_factory) -> Models:
    store = ArtifactStore(serving_home / "artifacts")
    try:
        return make_models(store, tmp_path_factory.mktemp("serving-models"))
    finally:
        store.close()


@pytest.fixture(scope="session")
def serving_service(serving_home, models, safety_service) -> Iterator[ServiceThread]:
    settings = make_settings(
        serving_home,
        [serving_home],
        addresses={"safety": safety_service.service.address},
        max_predict_texts=MAX_PREDICT_TEXTS,
    )
    service = ServiceThread("serving", settings).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def serving(serving_service) -> Iterator[Client]:
    yield from ready_client(serving_service.address)


@pytest.fixture(scope="session")
def safety(safety_service) -> Iterator[Client]:
    yield from ready_client(safety_service.service.address)


def deploy(client: Client, name: str, model_id: str, **fields) -> pb.Deployment:
    """Deploys and waits; the deployment as the response reports it."""
    operation = client.serving.DeployModel(
        pb.DeployModelRequest(name=name, model_id=model_id, **fields)
    )
    return client.wait(operation, pb.DeployModelResponse, timeout=120).deployment


def predict(client: Client, deployment: str, text: str, adapter: str = "") -> pb.ServedPrediction:
    request = pb.ServingServicePredictRequest(deployment=deployment, text=text, adapter=adapter)
    return client.serving.Predict(request).prediction


def listed(client: Client) -> dict[str, pb.Deployment]:
    response = client.serving.ListDeployments(pb.ListDeploymentsRequest(page_size=100))
    return {d.name: d for d in response.deployments}
