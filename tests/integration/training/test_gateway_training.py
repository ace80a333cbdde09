"""The gateway over a real training service: killed with SIGKILL while a training step runs, a
restarted gateway re-attaches to that training operation (it is not started again) and finishes
the run; cancelling a run cancels the training it started."""

from __future__ import annotations

import json

import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.errors import Cancelled
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.conftest import ServiceProcess
from tests.fixtures import TINY_BERT, reviews
from tests.waiting import follow, wait_done

pytestmark = pytest.mark.slow


def pipeline(dataset_id: str, steps: int) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: train-and-score}}
steps:
  - name: train
    call: training.TrainModel
    with:
      train: {{dataset_id: {dataset_id}}}
      model:
        from_config: {{model_type: bert, vocab_size: 120, config: {json.dumps(TINY_BERT)}}}
      task: TASK_SEQUENCE_CLASSIFICATION
      finetune: {{name: full}}
      hyper_parameters: {{learning_rate: 0.001, batch_size_per_worker: 4, max_steps: {steps}}}
      checkpoint: {{every_steps: 25}}
  - name: score
    call: training.EvaluateModel
    with:
      model_id: ${{{{ steps.train.model.id }}}}
      dataset: {{dataset_id: {dataset_id}}}
    gates: ["accuracy >= 0.0"]
"""


def stub(client: Client):
    return pipeline_service_pb2_grpc.PipelineServiceStub(client.channel)


def wait_for_step(client: Client, run: str, step: str, predicate):
    """The run's ``step`` once ``predicate`` holds for it, looked at again after each of the
    run's events (fails when the run ends first, or stops making progress)."""
    for _ in follow(client, run):
        got = stub(client).GetPipelineRun(pb.GetPipelineRunRequest(name=run)).run
        current = next(s for s in got.steps if s.name == step) if got.steps else None
        if current is not None and predicate(current):
            return current
    raise AssertionError(f"{run} ended before its step {step} got there")


def train_ops(tclient: Client) -> list[operations_pb2.Operation]:
    listed = tclient.operations.ListOperations(operations_pb2.ListOperationsRequest(page_size=500))
    return [
        op
        for op in listed.operations
        if tclient.metadata(op).method == "forgeline.v1.TrainingService/TrainModel"
    ]


def test_a_killed_gateway_reattaches_to_the_running_training(training, tclient, tmp_path):
    dataset = training.dataset(reviews(8), "gateway-reviews")
    env = {"FORGELINE_ADDRESSES": json.dumps({"training": training.service.address})}
    gateway = ServiceProcess("gateway", tmp_path, [tmp_path], env=env).start()
    before = len(train_ops(tclient))
    try:
        with Client(gateway.address) as client:
            client.wait_ready()
            op = stub(client).SubmitPipeline(
                pb.SubmitPipelineRequest(pipeline_yaml=pipeline(dataset.id, 150))
            )
            running = wait_for_step(
                client, op.name, "train", lambda s: s.operation and s.metrics.get("loss", 0) > 0
            )
        gateway.kill()  # SIGKILL while the training runs
        gateway = ServiceProcess("gateway", tmp_path, [tmp_path], env=env).start()
        with Client(gateway.address) as client:
            client.wait_ready()
            done = wait_done(client, op, pb.SubmitPipelineResponse).run
            events = list(client.stream_events(op.name, follow=False))
    finally:
        gateway.kill()
    steps = {s.name: s for s in done.steps}
    assert done.state == common_pb2.OPERATION_STATE_SUCCEEDED
    assert steps["train"].operation == running.operation  # re-attached, not started again
    assert len(train_ops(tclient)) == before + 1
    assert int(steps["train"].response["steps"]) == 150
    assert steps["score"].state == pb.STEP_STATE_SUCCEEDED
    assert steps["score"].gates[0].metric == "accuracy"
    # Training metrics kept arriving in the run's stream after the restart.
    restart = next(i for i, e in enumerate(events) if "restarted" in e.state.message)
    assert any(e.step == "train" and e.HasField("metrics") for e in events[restart:])


def test_cancelling_a_run_cancels_its_training(training, tclient, tmp_path):
    dataset = training.dataset(reviews(8), "gateway-cancel")
    env = {"FORGELINE_ADDRESSES": json.dumps({"training": training.service.address})}
    gateway = ServiceProcess("gateway", tmp_path, [tmp_path], env=env).start()
    try:
        with Client(gateway.address) as client:
            client.wait_ready()
            op = stub(client).SubmitPipeline(
                pb.SubmitPipelineRequest(pipeline_yaml=pipeline(dataset.id, 2000), no_cache=True)
            )
            running = wait_for_step(client, op.name, "train", lambda s: bool(s.operation))
            stub(client).CancelPipelineRun(pb.CancelPipelineRunRequest(name=op.name))
            with pytest.raises(Cancelled):
                client.wait(op, pb.SubmitPipelineResponse, timeout=120)
            steps = {
                s.name: s
                for s in stub(client)
                .GetPipelineRun(pb.GetPipelineRunRequest(name=op.name))
                .run.steps
            }
    finally:
        gateway.kill()
    assert steps["train"].state == pb.STEP_STATE_CANCELLED, steps["train"].message
    assert steps["score"].state == pb.STEP_STATE_SKIPPED
    trained = tclient.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=running.operation)
    )
    assert trained.done and tclient.metadata(trained).state == common_pb2.OPERATION_STATE_CANCELLED
