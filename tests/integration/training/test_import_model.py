"""ImportModel over gRPC and `forgeline train import`: a GGUF file becomes a model artifact in
the training service's store (once: the same bytes again answer cached), a bad source is refused
at submit naming the field, and a pipeline step can call it."""

from __future__ import annotations

import json
import shutil

import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from forgeline.server import ServiceThread
from forgeline.v1 import training_service_pb2 as pb
from tests.cli_runner import forgeline
from tests.conftest import make_settings
from tests.tiny_llm import tiny_llama_folder, tiny_llama_gguf
from tests.waiting import wait_done


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A training service of its own: importing needs no Ray, so none is started."""
    home = tmp_path_factory.mktemp("import-home")
    root = tmp_path_factory.mktemp("import-data")
    tiny_llama_gguf(root / "tiny.gguf")
    tiny_llama_folder(root / "llama")
    running = ServiceThread("training", make_settings(home, [root])).start()
    try:
        with Client(running.address) as client:
            client.wait_ready()
            yield running, client, root
    finally:
        running.stop()


def operation_count(client) -> int:
    listed = client.operations.ListOperations(operations_pb2.ListOperationsRequest(page_size=1000))
    return len(listed.operations)


def test_a_gguf_import_is_an_operation_whose_artifact_is_made_once(service):
    _, client, root = service
    request = pb.ImportModelRequest(
        source_path="tiny.gguf", output_name="tiny-llm", request_id="r1"
    )
    op = client.training.ImportModel(request)
    done = wait_done(client, op, pb.ImportModelResponse)

    assert not done.cached and done.architecture == "LlamaForCausalLM" and done.parameters > 0
    assert done.model.id.startswith("mdl_")
    assert done.model.metadata["task"] == "causal_lm"
    assert done.model.lineage.producer == "forgeline.v1.TrainingService/ImportModel"
    assert done.model.lineage.config["source_file"] == "tiny.gguf"
    assert client.training.ImportModel(request).name == op.name  # the same request id

    shutil.copy(root / "tiny.gguf", root / "copy.gguf")
    again = client.training.ImportModel(pb.ImportModelRequest(source_path="copy.gguf"))
    cached = wait_done(client, again, pb.ImportModelResponse)
    assert cached.cached and cached.model.id == done.model.id

    # The imported model is a model like a trained one: Predict continues a prompt with it.
    predicted = client.training.Predict(
        pb.PredictRequest(model_id=done.model.id, texts=["w1 w2"], max_new_tokens=2)
    )
    assert len(predicted.predictions) == 1


def test_bad_sources_are_refused_before_any_operation(service, tmp_path):
    _, client, root = service
    (root / "notes.gguf").write_text("not a model")
    tiny_llama_gguf(root / "alien.gguf", architecture="no-such-arch")
    pickled = root / "pickled"
    shutil.copytree(root / "llama", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    before = operation_count(client)

    def refused(error_type, path: str, *words: str, name: str = ""):
        request = pb.ImportModelRequest(source_path=path, output_name=name)
        with pytest.raises(error_type) as caught:
            client.training.ImportModel(request)
        assert all(w in caught.value.message for w in words), caught.value.message
        assert str(root) not in caught.value.message

    refused(InvalidArgument, "notes.gguf", "source_path", "not a GGUF file")
    refused(InvalidArgument, "alien.gguf", "source_path", "general.architecture")
    refused(InvalidArgument, "", "source_path")
    refused(PermissionDenied, str(tmp_path), "source_path", "outside the allowed roots")
    refused(FailedPrecondition, "pickled", "source_path", "pickle")
    refused(InvalidArgument, "tiny.gguf", "output_name", name="../escape")
    assert operation_count(client) == before


@pytest.mark.slow
def test_train_import_from_the_command_line_and_in_a_pipeline(service, tmp_path):
    running, _, root = service
    addresses = {"training": running.address}
    imported = forgeline(addresses, "train", "import", "llama", "--name", "cli-llama", "--json")
    assert imported.returncode == 0, imported.stderr
    response = json.loads(imported.stdout)
    assert response["model"]["id"].startswith("mdl_") and response["architecture"]

    shown = forgeline(addresses, "train", "import", "llama")
    assert shown.returncode == 0, shown.stderr
    assert response["model"]["id"] in shown.stdout and "imported before" in shown.stdout

    pipeline = tmp_path / "import.yaml"
    pipeline.write_text(
        "apiVersion: forgeline/v1\nkind: Pipeline\nmetadata: {name: import-llm}\nsteps:\n"
        "  - name: import_llm\n    call: training.ImportModel\n"
        "    with: {source_path: models/tiny.gguf, output_name: tiny-llm}\n"
        "  - name: score\n    call: training.EvaluateModel\n"
        "    with: {model_id: '${{ steps.import_llm.model.id }}', dataset: {dataset_id: d}}\n"
    )
    valid = forgeline({}, "validate", "--offline", str(pipeline))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    pipeline.write_text(pipeline.read_text().replace("source_path:", "source_pth:"))
    typo = forgeline({}, "validate", "--offline", str(pipeline))
    assert typo.returncode != 0 and "source_pth" in typo.stdout + typo.stderr
