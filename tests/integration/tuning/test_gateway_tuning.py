"""The gateway chains the tuning service like any other: a `tune` step searches, its gate reads
the best trial's metrics, the next step scores the best trial's model, and the run report holds
the search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from forgeline.client import Client
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings
from tests.fixtures import TINY_BERT, reviews
from tests.waiting import wait_done


def pipeline(train_id: str, eval_id: str) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: tune-and-score}}
steps:
  - name: tune
    call: tuning.TuneModel
    with:
      training:
        train: {{dataset_id: {train_id}}}
        eval: {{dataset_id: {eval_id}}}
        model:
          from_config: {{model_type: bert, vocab_size: 120, config: {json.dumps(TINY_BERT)}}}
        task: TASK_SEQUENCE_CLASSIFICATION
        finetune: {{name: lora, config: {{target_modules: [query, key, value, dense]}}}}
        hyper_parameters: {{batch_size_per_worker: 8, epochs: 3, seed: 3}}
      search_space:
        - {{name: hyper_parameters.learning_rate, loguniform: {{low: 0.0005, high: 0.02}}}}
        - {{name: finetune.config.r, choice: {{values: [2, 8]}}}}
      objectives: [{{metric: eval_loss, direction: OBJECTIVE_DIRECTION_MINIMIZE}}]
      num_trials: 4
      max_concurrent_trials: 2
      searcher: {{name: optuna, config: {{n_startup_trials: 2}}}}
      scheduler: {{name: asha}}
      seed: 2
    gates: ["best_metrics.eval_loss <= 10"]
  - name: score
    call: training.EvaluateModel
    with:
      model_id: ${{{{ steps.tune.model.id }}}}
      dataset: {{dataset_id: {eval_id}}}
"""


@pytest.fixture(scope="module")
def gateway(tuning, tmp_path_factory) -> Iterator[Client]:
    home = tmp_path_factory.mktemp("gateway-tuning")
    training = ServiceThread("training", make_settings(tuning.home, [home])).start()
    settings = make_settings(
        home / "gateway",
        [home],
        addresses={"tuning": tuning.service.address, "training": training.address},
    )
    thread = ServiceThread("gateway", settings).start()
    with Client(thread.address) as client:
        client.wait_ready()
        yield client
    thread.stop()
    training.stop()


@pytest.mark.slow
def test_a_tune_step_feeds_the_best_model_to_the_next_step(tuning, gateway):
    train = tuning.dataset(reviews(8), "gw-tune-train")
    held_out = tuning.dataset(reviews(2), "gw-tune-eval")
    stub = pipeline_service_pb2_grpc.PipelineServiceStub(gateway.channel)
    op = stub.SubmitPipeline(
        pb.SubmitPipelineRequest(pipeline_yaml=pipeline(train.id, held_out.id))
    )
    done = wait_done(gateway, op, pb.SubmitPipelineResponse).run
    assert done.state == common_pb2.OPERATION_STATE_SUCCEEDED, done.message
    steps = {s.name: s for s in done.steps}
    tuned = steps["tune"].response
    assert len(tuned["trials"]) == 4
    assert steps["tune"].gates[0].passed
    assert steps["tune"].gates[0].value == tuned["best_metrics"]["eval_loss"]
    assert steps["score"].state == pb.STEP_STATE_SUCCEEDED
    # The score step loaded the tuned adapter; its loss on the same rows is the best trial's.
    scored = steps["score"].response["evaluation"]
    assert scored["loss"] == pytest.approx(tuned["best_metrics"]["eval_loss"], rel=1e-4)
    folder = Path(unquote(urlparse(done.report.uri).path))
    doc = json.loads((folder / "report.json").read_text())
    tune_step = next(s for s in doc["steps"] if s["name"] == "tune")
    assert len(tune_step["response"]["trials"]) == 4
    assert any(name.startswith("trial_") for name in doc["series"]["tune"])
    assert tuned["model"]["id"] in {a["id"] for a in doc["artifacts"]}
    page = (folder / "report.html").read_text()
    assert "Hyper-parameter search — tune" in page and "Objective over trials" in page
