"""A pipeline audits a model for fairness and deploys it behind a safety policy only when the
audit's gate passes; the audit log hears of the runs, the promotion decisions and the requests
the deployment blocked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pytest
from google.protobuf import json_format

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.datasets import DatasetRepository
from forgeline.errors import NotFound, PermissionDenied
from forgeline.testing import text_checks
from forgeline.v1 import common_pb2, pipeline_service_pb2_grpc
from forgeline.v1 import pipeline_service_pb2 as pb
from forgeline.v1 import safety_service_pb2 as spb
from forgeline.v1 import serving_service_pb2 as vpb
from tests.conftest import ServiceThread, make_settings


class Stack:
    def __init__(self, gateway: Client, safety: Client, serving: Client, ids: dict[str, str]):
        self.gateway, self.safety, self.serving, self.ids = gateway, safety, serving, ids


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    pytest.importorskip("fairlearn")
    home = tmp_path_factory.mktemp("guarded-home")
    store = ArtifactStore(home / "artifacts")
    try:
        # A model that calls everything spam: every group is selected alike (parity holds), and
        # it is right about half the rows.
        model = text_checks.commit_model(store, "always-spam", bias=(-10.0, 10.0))
        rows = pa.table(
            {
                "text": [f"the food was good {i}" for i in range(8)],
                "label": ["spam", "ham"] * 4,
                "group": ["a", "a", "b", "b"] * 2,
            }
        )
        dataset = DatasetRepository(store).save(
            rows, name="guarded-rows", text_column="text", label_column="label", lineage=Lineage()
        )
    finally:
        store.close()
    safety = ServiceThread("safety", make_settings(home, [home])).start()
    addresses = {"safety": safety.address}
    serving = ServiceThread("serving", make_settings(home, [home], addresses=addresses)).start()
    addresses["serving"] = serving.address
    gateway = ServiceThread("gateway", make_settings(home, [home], addresses=addresses)).start()
    clients = [Client(t.address) for t in (gateway, safety, serving)]
    for client in clients:
        client.wait_ready()
    clients[0].pipelines = pipeline_service_pb2_grpc.PipelineServiceStub(clients[0].channel)
    yield Stack(*clients, {"model": model.id, "dataset": dataset.id})
    for client in clients:
        client.close()
    for thread in (gateway, serving, safety):
        thread.stop()


def guarded(ids: dict[str, str], name: str, min_accuracy: float) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: guarded}}
steps:
  - name: audit
    call: safety.AuditFairness
    with:
      model_id: {ids["model"]}
      dataset: {{dataset_id: {ids["dataset"]}}}
      sensitive_columns: [group]
      positive_label: spam
      thresholds: {{max_demographic_parity_difference: 0.1, min_accuracy: {min_accuracy}}}
    gates: ["passed >= 1"]
  - name: deploy
    call: serving.DeployModel
    with:
      name: {name}
      model_id: ${{{{ steps.audit.subject }}}}
      policy:
        yaml: |
          input_filters:
            - name: no-secrets
              filter: {{name: blocklist, config: {{words: [password]}}}}
"""


def run(stack: Stack, text: str) -> pb.PipelineRun:
    op = stack.gateway.pipelines.SubmitPipeline(pb.SubmitPipelineRequest(pipeline_yaml=text))
    deadline = time.monotonic() + 120
    while not stack.gateway.operations.GetOperation(_get(op.name)).done:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    return stack.gateway.pipelines.GetPipelineRun(pb.GetPipelineRunRequest(name=op.name)).run


def _get(name: str):
    from google.longrunning import operations_pb2

    return operations_pb2.GetOperationRequest(name=name)


def audit_log(stack: Stack, kind: str, count: int) -> list[spb.AuditEntry]:
    """The entries of ``kind``, once at least ``count`` arrived (outboxes deliver in the
    background)."""
    deadline = time.monotonic() + 30
    while True:
        entries = list(
            stack.safety.safety.ListAuditEntries(spb.ListAuditEntriesRequest(kind=kind)).entries
        )
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.2)


def details(entry: spb.AuditEntry) -> dict:
    return json_format.MessageToDict(entry.event.details)


def test_a_fair_model_is_deployed_and_serves_behind_its_policy(stack):
    done = run(stack, guarded(stack.ids, "guarded", min_accuracy=0.4))
    assert done.state == common_pb2.OPERATION_STATE_SUCCEEDED, done.message
    audit, deploy = done.steps
    assert audit.gates[0].passed and deploy.state == pb.STEP_STATE_SUCCEEDED

    answer = stack.serving.serving.Predict(
        vpb.ServingServicePredictRequest(deployment="guarded", text="the food was good")
    ).prediction
    assert answer.label == "spam"
    with pytest.raises(PermissionDenied, match="no-secrets"):
        stack.serving.serving.Predict(
            vpb.ServingServicePredictRequest(deployment="guarded", text="my password is 1234")
        )

    (blocked,) = audit_log(stack, "blocked_request", 1)
    assert (blocked.event.subject, blocked.event.actor) == ("guarded", "serving")
    assert details(blocked)["rule"] == "no-secrets" and "password" not in str(details(blocked))
    promotions = audit_log(stack, "promotion", 1)
    assert details(promotions[0])["promoted"] is True
    assert details(promotions[0])["run"] == done.name
    runs = [details(e) for e in audit_log(stack, "pipeline_run", 2) if e.event.subject == done.name]
    assert [r["state"] for r in runs] == ["RUNNING", "SUCCEEDED"]
    (fairness,) = audit_log(stack, "fairness_audit", 1)
    assert fairness.event.subject == stack.ids["model"]
    assert stack.safety.safety.VerifyAuditLog(spb.VerifyAuditLogRequest()).ok


def test_a_failed_audit_gate_keeps_the_model_from_being_deployed(stack):
    done = run(stack, guarded(stack.ids, "not-deployed", min_accuracy=0.9))
    assert done.state == common_pb2.OPERATION_STATE_FAILED
    audit, deploy = done.steps
    assert "passed" in audit.message and deploy.state == pb.STEP_STATE_SKIPPED
    with pytest.raises(NotFound):
        stack.serving.serving.Predict(
            vpb.ServingServicePredictRequest(deployment="not-deployed", text="hello")
        )
    refused = [e for e in audit_log(stack, "promotion", 2) if details(e)["run"] == done.name]
    assert len(refused) == 1 and details(refused[0])["promoted"] is False
    assert details(refused[0])["gates"][0]["value"] == 0.0
