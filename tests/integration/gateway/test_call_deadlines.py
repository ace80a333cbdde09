"""Slow start-ups and stalled services, as a new user meets them (issue 18, item 16, and the Ray
part of item 10): a submit answers at once, whatever Ray is doing; Ray that does not answer fails
the operation UNAVAILABLE with the reason; a call the gateway gives up on names the call, what it
waited for and the setting; and the run it failed stays retryable once its stack is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.client import Client
from forgeline.errors import FailedPrecondition, Unavailable
from forgeline.raynodes import free_port
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb
from tests.conftest import REPO, ServiceProcess, ServiceThread, make_settings, store_reviews
from tests.fixtures import tiny_bert


def test_a_submit_answers_before_ray_and_ray_that_never_answers_fails_it_unavailable(tmp_path):
    """Nothing listens at RAY_ADDRESS. The submit still returns an operation (before the fix it
    waited for Ray inside the call, past any caller's deadline); the operation then says it is
    connecting, and fails UNAVAILABLE naming the address and the setting that bounds the
    wait (before the fix: INTERNAL, or minutes of silence)."""
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    dataset_id = store_reviews(home, 4)
    nowhere = f"127.0.0.1:{free_port()}"
    env = {"RAY_ADDRESS": nowhere, "FORGELINE_RAY_CONNECT_TIMEOUT_SECONDS": "2"}
    service = ServiceProcess("training", home, [root], env=env).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            op = client.training.TrainModel(
                tpb.TrainModelRequest(
                    train=common_pb2.DatasetInput(dataset_id=dataset_id),
                    model=tiny_bert(),
                    hyper_parameters=common_pb2.HyperParameters(
                        batch_size_per_worker=2, max_steps=1
                    ),
                ),
                timeout=120,  # the planner's first import of transformers, on a loaded machine
            )
            with pytest.raises(Unavailable) as caught:
                client.wait(op, tpb.TrainModelResponse, timeout=120)
            progress = [
                e.progress.message
                for e in client.stream_events(op.name, follow=False)
                if e.HasField("progress")
            ]
    finally:
        service.kill()  # its attempt to reach Ray is still waiting inside Ray
    assert caught.value.reason == "RAY_UNAVAILABLE"
    message = str(caught.value)
    assert nowhere in message and "ray_connect_timeout_seconds" in message, message
    assert progress == [f"connecting to Ray at {nowhere} (RAY_ADDRESS)"], progress


# --- a stalled service, seen from the gateway ----------------------------------------------------

CALL_TIMEOUT_S, RETRY_S = 1.0, 2.0


def one_step(source: Path) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: stalled}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{source}"}}
"""


@pytest.fixture
def data(tmp_path) -> Iterator[tuple[ServiceProcess, Path]]:
    """A real data service as its own process (a process can be stalled: SIGSTOP), and a CSV
    inside its data root."""
    root = tmp_path / "root"
    root.mkdir()
    source = root / "reviews.csv"
    source.write_text("text,label\n" + "".join(f"tasty {i},pos\n" for i in range(6)))
    (tmp_path / "data-home").mkdir()
    service = ServiceProcess("data", tmp_path / "data-home", [root]).start()
    try:
        yield service, source
    finally:
        service.proc.send_signal(signal.SIGCONT)
        service.kill()


def test_a_stalled_service_fails_the_step_naming_the_call_and_the_run_is_retried_later(
    tmp_path, data
):
    """The data service stops answering after the pipeline was checked. With a 1 s call
    deadline (a gateway setting now, not a constant) the step fails with a message that names
    the call, what it waited for and the settings, not a bare "Deadline Exceeded". Then the
    gateway stops, as an embedded stack does when its command ends; `forgeline runs retry`,
    with no gateway answering, starts a stack for the run over the same FORGELINE_HOME and
    retries it to success (before the fix it only said that no gateway answers)."""
    service, source = data
    home = tmp_path / "gateway-home"
    settings = make_settings(
        home,
        [source.parent],
        addresses={"data": service.address},
        call_timeout_seconds=CALL_TIMEOUT_S,
        call_retry_seconds=RETRY_S,
    )
    gateway = ServiceThread("gateway", settings).start()
    try:
        with Client(gateway.address) as client:
            client.wait_ready()
            pipelines = pipeline_service_pb2_grpc.PipelineServiceStub(client.channel)
            text = one_step(source)
            pipelines.ValidatePipeline(pb.ValidatePipelineRequest(pipeline_yaml=text))
            service.proc.send_signal(signal.SIGSTOP)  # alive, listening, answering nothing
            op = pipelines.SubmitPipeline(pb.SubmitPipelineRequest(pipeline_yaml=text))
            with pytest.raises(FailedPrecondition) as failed:
                client.wait(op, pb.SubmitPipelineResponse, timeout=60)
            service.proc.send_signal(signal.SIGCONT)
            (step,) = pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=op.name)).run.steps
    finally:
        gateway.stop()
    service.kill()
    assert failed.value.reason == "RUN_FAILED"
    assert step.state == pb.STEP_STATE_FAILED
    assert step.message.startswith(f"data.IngestDataset at {service.address}: no answer within"), (
        step.message
    )
    for words in ("waiting for the service to accept", "call_timeout_seconds", "retried for"):
        assert words in step.message, step.message

    env = {
        **os.environ,
        "FORGELINE_HOME": str(home),
        "FORGELINE_GATEWAY": f"127.0.0.1:{free_port()}",  # where no gateway answers
        "FORGELINE_DATA_ROOTS": str(source.parent),
        "FORGELINE_LOG_JSON": "false",
    }
    env.pop("FORGELINE_ADDRESSES", None)
    retried = subprocess.run(
        [sys.executable, "-m", "forgeline", "runs", "retry", op.name, "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retried.returncode == 0, retried.stdout[-2000:] + retried.stderr[-2000:]
    assert "starting an embedded stack" in " ".join(retried.stderr.split())
    run = json.loads(retried.stdout)
    assert run["state"] == common_pb2.OperationState.Name(common_pb2.OPERATION_STATE_SUCCEEDED)
    assert [s["state"] for s in run["steps"]] == ["STEP_STATE_SUCCEEDED"]
