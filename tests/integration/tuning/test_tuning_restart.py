"""A tuning service killed (SIGKILL) or stopped (SIGTERM) mid-search resumes the experiment when
it comes back: finished trials are not run again, and the search ends with the number of trials it
was asked for (a trial that started after Tune last saved its state is proposed again, once).
The stopped one runs on an S3 artifact store (moto): the experiment, the trials' inputs and
models are in the bucket, restored from there, and nothing of the run is left behind."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest
from google.longrunning import operations_pb2

from forgeline import storage
from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.datasets import DatasetRepository
from forgeline.v1 import tuning_service_pb2 as pb
from tests.conftest import ServiceProcess
from tests.fixtures import reviews, spec
from tests.integration.tuning.test_tuning_service import loguniform, training
from tests.waiting import wait_done

TRIALS, EPOCHS = 3, 4


@pytest.mark.slow
@pytest.mark.parametrize("stop,where", [("kill", "local"), ("terminate", "s3")])
def test_a_stopped_tuning_service_restores_its_search_without_rerunning_finished_trials(
    tmp_path, ray_local, request, stop, where
):
    home, root = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    root.mkdir()
    shared = ""
    if where == "s3":
        base, query = request.getfixturevalue("s3_bucket")["uri"].split("?")
        shared = f"{base}-tuning?{query}"
    store = ArtifactStore(home / "artifacts", shared=shared)
    datasets = DatasetRepository(store)
    train, held_out = (
        datasets.save(
            reviews(copies), name=name, text_column="text", label_column="label", lineage=Lineage()
        )
        for copies, name in ((8, "restart-train"), (2, "restart-eval"))
    )
    store.close()
    env = {
        "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address,
        "FORGELINE_ARTIFACT_URI": shared,
    }
    request = pb.TuneModelRequest(
        training=training(train.id, held_out.id, epochs=EPOCHS),
        search_space=[loguniform("hyper_parameters.learning_rate", 1e-4, 1e-2)],
        num_trials=TRIALS,
        max_concurrent_trials=1,
        scheduler=spec("fifo"),
        seed=5,
        request_id="tune-restart-1",
    )
    service = ServiceProcess("tuning", home, [root], env=env).start()
    try:
        with Client(service.address) as client:
            client.wait_ready()
            op = client.tuning.TuneModel(request)
            finished: dict[int, str] = {}
            seen = 0
            for event in client.stream_events(op.name):
                seen = event.sequence
                message = event.progress.message if event.HasField("progress") else ""
                if " finished:" in message:
                    finished[int(message.split()[1])] = message
                if len(finished) == 2:
                    break
        getattr(service, stop)()
        service = ServiceProcess("tuning", home, [root], env=env).start()
        with Client(service.address) as client:
            client.wait_ready()
            done = wait_done(client, op, pb.TuneModelResponse)
            meta = client.metadata(
                client.operations.GetOperation(operations_pb2.GetOperationRequest(name=op.name))
            )
            after = [
                e.progress.message
                for e in client.stream_events(op.name, after_sequence=seen, follow=False)
                if e.HasField("progress")
            ]
    finally:
        service.terminate()
    assert meta.attempt == 2
    assert "restoring the search" in after
    for number in finished:
        assert not any(m.startswith(f"trial {number}/{TRIALS} started") for m in after), after
        assert not any(m.startswith(f"trial {number} finished:") for m in after), after
    assert [t.number for t in done.trials] == list(range(1, TRIALS + 1))
    assert all(t.state == pb.TRIAL_STATE_COMPLETED for t in done.trials), done.trials
    assert all(t.iterations == len(t.objective_history) == EPOCHS for t in done.trials)
    assert done.completed_trials == TRIALS
    best = max(done.trials, key=lambda t: t.metrics["eval_accuracy"])
    assert done.best_metrics["eval_accuracy"] == best.metrics["eval_accuracy"]
    if shared:
        store = ArtifactStore(tmp_path / "elsewhere", shared=shared)  # another machine
        model = store.get(done.model.id)
        folder = store.verify(model)  # the best trial's LoRA adapter, from the bucket alone
        assert model.uri.startswith("s3://") and (folder / "adapter_config.json").is_file()
        fs, path = storage.Location(shared).child("runs").open()
        left = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        assert not [i.path for i in left if i.type == pafs.FileType.File], "the run was left"
