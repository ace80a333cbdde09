"""The gateway chains the compression service like any other: a `compress` step's gate reads
the response's ratios, a failed gate stops the run, and the run report holds the trade-off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from forgeline.client import Client
from forgeline.errors import FailedPrecondition
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings
from tests.waiting import wait_done


def pipeline(model_id: str, eval_id: str, gate: str) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: compress}}
steps:
  - name: compress
    call: compression.CompressModel
    with:
      model_id: {model_id}
      eval: {{dataset_id: {eval_id}}}
      compressors:
        - {{name: dynamic_int8}}
        - {{name: onnx_export, config: {{quantize: false}}}}
      accuracy_budget: 0.05
      latency: {{single_runs: 5, batch_size: 8, batch_runs: 2, threads: 1}}
    gates: ["{gate}"]
"""


@pytest.fixture(scope="module")
def gateway(compression, tmp_path_factory) -> Iterator[Client]:
    home = tmp_path_factory.mktemp("gateway-compression")
    settings = make_settings(
        home / "gateway", [home], addresses={"compression": compression.service.address}
    )
    thread = ServiceThread("gateway", settings).start()
    with Client(thread.address) as client:
        client.wait_ready()
        yield client
    thread.stop()


def run(gateway, yaml: str):
    stub = pipeline_service_pb2_grpc.PipelineServiceStub(gateway.channel)
    op = stub.SubmitPipeline(pb.SubmitPipelineRequest(pipeline_yaml=yaml))
    return wait_done(gateway, op, pb.SubmitPipelineResponse).run


def test_a_chain_the_formats_refuse_fails_its_step_naming_the_compressor(gateway, models):
    with pytest.raises(FailedPrecondition, match=r"compressors\[1\]\.name: .* hf_int8"):
        run(gateway, pipeline(models.full.id, models.eval.id, "size_ratio <= 1"))


def test_a_compress_step_gates_on_its_ratios_and_reports_the_trade_off(gateway, models):
    ok = pipeline(models.full.id, models.eval.id, "accuracy_delta >= -0.05").replace(
        "        - {name: onnx_export, config: {quantize: false}}\n", ""
    )
    done = run(gateway, ok)
    assert done.state == common_pb2.OPERATION_STATE_SUCCEEDED, done.message
    (step,) = done.steps
    assert step.gates[0].passed and step.gates[0].value == step.response["accuracy_delta"]
    folder = Path(unquote(urlparse(done.report.uri).path))
    page = (folder / "report.html").read_text()
    assert "Compression — compress" in page and "against latency and size" in page
    doc = json.loads((folder / "report.json").read_text())
    assert step.response["model"]["id"] in {a["id"] for a in doc["artifacts"]}

    failing = ok.replace("accuracy_delta >= -0.05", "size_ratio <= 0.01")
    with pytest.raises(FailedPrecondition, match="size_ratio"):
        run(gateway, failing)
