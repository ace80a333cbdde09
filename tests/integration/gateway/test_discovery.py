"""The gateway learns a running service from its address alone: descriptors over reflection,
plugins over ListPlugins, and checks a pipeline against them."""

from __future__ import annotations

import socket

import pytest

from forgeline.client import Client
from forgeline.errors import Unavailable
from forgeline.gateway.catalog import check, discover
from forgeline.gateway.spec import parse

PIPELINE = """
apiVersion: forgeline/v1
kind: Pipeline
metadata: {name: discovered}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {source: reviews.csv, loader: {name: csv, config: {delimiter: ","}}}
  - name: clean
    call: data.CleanDataset
    with:
      dataset_id: ${{ steps.ingest.dataset.artifact.id }}
      cleaners: [{name: dedup_near, config: {threshold: 0.8}}, {name: dedupe}]
    gates: ["report_rows_out >= 1"]
"""


def test_a_running_service_is_discovered_and_checks_a_pipeline(data_service):
    with Client(f"127.0.0.1:{data_service.port}", timeout=10) as client:
        client.wait_ready()
        catalog = discover("data", client)
    assert catalog.service.full_name == "forgeline.v1.DataService"
    assert "CleanDataset" in catalog.long_running()
    assert catalog.response_type("CleanDataset").full_name == "forgeline.v1.CleanDatasetResponse"
    assert {"loaders", "cleaners", "augmenters"} <= set(catalog.plugins)

    problems, checked = check(parse(PIPELINE), {"data": catalog})
    found = {p.field: p.description for p in problems}
    assert "no cleaners plugin 'dedupe'" in found["steps.clean.with.cleaners[1].name"]
    assert "no metric 'report_rows_out'" in found["steps.clean.gates[0]"]
    assert set(found) == {"steps.clean.with.cleaners[1].name", "steps.clean.gates[0]"}, found
    assert checked.methods["ingest"] == "forgeline.v1.DataService/IngestDataset"


def test_an_unreachable_service_is_unavailable_with_its_name_and_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with Client(f"127.0.0.1:{port}", timeout=2, stream_timeout=2) as client:
        with pytest.raises(Unavailable) as caught:
            discover("data", client)
    assert caught.value.metadata == {"service": "data", "address": f"127.0.0.1:{port}"}
    assert f"data service at 127.0.0.1:{port}" in str(caught.value)
