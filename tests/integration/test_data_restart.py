"""A data service killed with SIGKILL mid-operation still answers for every accepted operation."""

from __future__ import annotations

import time

import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.v1 import common_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import ServiceProcess

State = common_pb2.OperationState


def _state(client: Client, name: str) -> common_pb2.OperationMetadata:
    op = client.operations.GetOperation(operations_pb2.GetOperationRequest(name=name))
    return client.metadata(op)


@pytest.mark.slow
def test_kill_mid_operation_then_restart_answers_every_operation(tmp_path):
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    service = ServiceProcess("data", home, [root]).start()
    rows = [
        {
            "text": f"review {i} says the noodles were {'good' if i % 3 else 'cold'} today",
            "label": i % 2,
        }
        for i in range(6000)
    ]
    with Client(service.address) as client:
        client.wait_ready()

        def messages():
            yield pb.UploadRecordsRequest(header=pb.UploadHeader(name="reviews"))
            yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=[struct(r) for r in rows]))
            yield pb.UploadRecordsRequest(commit=pb.UploadCommit())

        source = client.data.UploadRecords(messages()).dataset
        slow = client.data.CleanDataset(
            pb.CleanDatasetRequest(
                dataset_id=source.artifact.id,
                request_id="near-1",
                cleaners=[
                    common_pb2.PluginSpec(name="normalize_text"),
                    common_pb2.PluginSpec(name="dedup_near", config=struct({"threshold": 0.8})),
                ],
            )
        )
        quick = client.data.ProfileDataset(pb.ProfileDatasetRequest(dataset_id=source.artifact.id))
        client.wait(quick, pb.ProfileDatasetResponse)
        deadline = time.monotonic() + 30
        while _state(client, slow.name).state != State.OPERATION_STATE_RUNNING:
            assert time.monotonic() < deadline, "the clean never started"
            time.sleep(0.05)
    service.kill()  # SIGKILL: no graceful anything

    restarted = ServiceProcess("data", home, [root]).start()
    try:
        with Client(restarted.address) as client:
            client.wait_ready()
            # The finished operation is still answered, with its response.
            assert _state(client, quick.name).state == State.OPERATION_STATE_SUCCEEDED
            # The interrupted one was resumed (attempt 2) and finishes.
            result = client.wait(slow, pb.CleanDatasetResponse, timeout=240)
            meta = _state(client, slow.name)
            assert meta.state == State.OPERATION_STATE_SUCCEEDED and meta.attempt == 2
            assert result.steps[-1].cleaner == "dedup_near"
            assert 0 < result.dataset.num_rows < 6000
            # Resubmitting the same request id returns the same operation, not a new run.
            again = client.data.CleanDataset(
                pb.CleanDatasetRequest(
                    dataset_id=source.artifact.id,
                    request_id="near-1",
                    cleaners=[
                        common_pb2.PluginSpec(name="normalize_text"),
                        common_pb2.PluginSpec(name="dedup_near", config=struct({"threshold": 0.8})),
                    ],
                )
            )
            assert again.name == slow.name
            # No dataset was lost and nothing half-written is visible.
            names = [d.name for d in client.data.ListDatasets(pb.ListDatasetsRequest()).datasets]
            assert sorted(names) == ["reviews", "reviews"]
            got = client.data.GetDataset(pb.GetDatasetRequest(dataset_id=source.artifact.id))
            assert got.dataset.num_rows == 6000
        staging = home / "artifacts" / "staging"  # the killed process's folder is swept
        assert [p.name.split("-")[0] for p in staging.iterdir()] == [str(restarted.proc.pid)]
    finally:
        assert restarted.terminate() == 0  # SIGTERM is a clean, graceful stop
