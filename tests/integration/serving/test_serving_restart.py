"""A restarted serving service deploys again what was deployed, and nothing that was removed."""

from __future__ import annotations

from forgeline.artifacts import ArtifactStore
from forgeline.client import Client
from forgeline.v1 import common_pb2
from forgeline.v1 import serving_service_pb2 as pb
from tests.conftest import ServiceThread, make_settings
from tests.integration.serving.conftest import (
    TEXTS,
    commit_model,
    deploy,
    listed,
    predict,
    tiny_classifier,
)

POLICY = "input_filters: [{filter: {name: pii}}]"


def test_a_restart_deploys_the_saved_deployments_again(tmp_path):
    store = ArtifactStore(tmp_path / "home" / "artifacts")
    model = commit_model(store, tiny_classifier(tmp_path, seed=3), "restart-model", "hf")
    store.close()
    settings = make_settings(tmp_path / "home", [tmp_path])

    service = ServiceThread("serving", settings).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            kept = deploy(
                client,
                "kept",
                model.id,
                policy=common_pb2.PolicySource(yaml=POLICY),
                batching=pb.BatchingOptions(max_batch_size=4, max_wait_ms=2),
            )
            deploy(client, "removed", model.id)
            before = predict(client, "kept", TEXTS[2])
            client.serving.UndeployModel(pb.UndeployModelRequest(name="removed"))
    finally:
        service.stop()

    service = ServiceThread("serving", settings).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            after = predict(client, "kept", TEXTS[2])  # waits while it loads again
            shown = listed(client)
    finally:
        service.stop()
    assert set(shown) == {"kept"}
    again = shown["kept"]
    assert again.state == pb.DEPLOYMENT_STATE_SERVING
    assert (again.model_id, again.policy_sha256, again.batching) == (
        kept.model_id,
        kept.policy_sha256,
        kept.batching,
    )
    assert again.create_time == kept.create_time and again.requests == 1
    assert after.model_input == before.model_input == "mail me at [EMAIL] please"
    assert dict(after.probabilities) == dict(before.probabilities)
