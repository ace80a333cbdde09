"""CleanDataset runs safety filters with the data service's registry and model store: PII is
masked, a classifier artifact from the store is loaded by id, a blocklist drops rows."""

from __future__ import annotations

import pytest

from forgeline.artifacts import ArtifactStore
from forgeline.convert import from_struct
from forgeline.errors import InvalidArgument
from forgeline.testing import text_checks
from forgeline.v1 import data_service_pb2 as pb
from tests.integration.test_data_service import read_all, spec, upload


def test_clean_with_safety_filters_uses_the_services_models(client, data_service):
    store = ArtifactStore(data_service.settings.artifacts_dir)
    try:
        ham = text_checks.commit_model(store, "certain-ham", bias=(10.0, -10.0))
    finally:
        store.close()
    rows = [
        {"text": "great food, write to amy@example.com", "label": 1},
        {"text": "送餐太慢了，电话13800138000", "label": 0},
        {"text": "BUY NOW cheap pills", "label": 0},
        {"text": "fine, thanks", "label": 1},
    ]
    source = upload(client, "safety-clean", rows)
    classifier = {"model_id": ham.id, "labels": ["spam"], "threshold": 0.5}
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=source.artifact.id,
            cleaners=[
                spec("safety_filter", filter="pii"),
                spec("safety_filter", filter="classifier", config=classifier),
                spec("safety_filter", filter="blocklist", config={"regexes": [r"buy\s+now"]}),
            ],
        )
    )
    result = client.wait(op, pb.CleanDatasetResponse)
    pii, model, blocklist = result.steps
    assert from_struct(pii.details)["rows_redacted"] == 2
    assert (model.rows_in, model.rows_out) == (4, 4)  # every text is ham for this model
    assert from_struct(model.details)["matches"] == {}
    assert (blocklist.rows_out, blocklist.examples[0].reason) == (3, "drop: regex")
    assert read_all(client, result.dataset.artifact.id).column("text").to_pylist() == [
        "great food, write to [EMAIL]",
        "送餐太慢了，电话[PHONE]",
        "fine, thanks",
    ]

    missing = {**classifier, "model_id": "no-such-model"}
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=source.artifact.id,
            cleaners=[spec("safety_filter", filter="classifier", config=missing)],
        )
    )
    with pytest.raises(InvalidArgument, match="config.model_id: no model artifact 'no-such-model'"):
        client.wait(op, pb.CleanDatasetResponse)
