"""A real two-node Ray cluster on this machine: a head and a worker node, each a `ray start`
process with a raylet of its own, running a Python that has never seen forgeline (the training
service ships its code in the job's runtime environment). A 2-worker training run lands one
worker on each node; the worker node is killed half-way, a replacement node joins, and the run
finishes from its checkpoint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("ray")

from forgeline import raynodes  # noqa: E402
from forgeline.client import Client  # noqa: E402
from forgeline.finetune.metrics import PLACED  # noqa: E402
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb  # noqa: E402
from tests.conftest import ServiceProcess  # noqa: E402
from tests.integration.training.test_training_failures import (  # noqa: E402
    group_starts,
    home_with_reviews,
    loss_steps,
    request,
)
from tests.waiting import wait_done, wait_for_step  # noqa: E402

# The head notices a lost node within seconds, not the default half a minute.
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3"}


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A Python with forgeline's dependencies (Ray, torch, transformers) but not forgeline: a
    venv whose site-packages reaches ours through a plain path entry, so the editable install's
    import hook (a .pth file there) never runs."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [python, "-c", "import ray, torch, transformers\nimport forgeline"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert "No module named 'forgeline'" in probe.stderr, probe.stderr
    return python


def placements(client: Client, operation: str) -> list[list[str]]:
    """The node ids of each started worker group, by rank, from the run's progress events."""
    found = []
    for event in client.stream_events(operation, follow=False):
        if event.HasField("progress") and event.progress.message.startswith(PLACED):
            found.append(re.findall(r"rank \d+ on node (\w+)", event.progress.message))
    return found


def test_two_workers_on_two_nodes_survive_losing_a_node(tmp_path, bare_python):
    home, root, train = home_with_reviews(tmp_path, "two-nodes")
    logs = tmp_path / "logs"
    head = raynodes.start_head(
        num_cpus=1, log=logs / "head.log", python=bare_python, client_server=True, env=FAST_HEALTH
    )
    nodes = [head]
    service = None
    try:
        nodes.append(
            raynodes.start_worker(head, num_cpus=1, log=logs / "w1.log", python=bare_python)
        )
        # Through Ray Client, as deploy/ connects (the service is the cluster's client).
        env = {**head.env, "RAY_ADDRESS": head.client_address}
        service = ServiceProcess("training", home, [root], env=env).start()
        steps, every = 40, 10
        with Client(service.address) as client:
            client.wait_ready()
            op = client.training.TrainModel(
                request(
                    train.id,
                    steps,
                    every,
                    scaling=common_pb2.Scaling(num_workers=2, cpus_per_worker=1),
                    failure=pb.FailurePolicy(max_failures=1),
                )
            )
            wait_for_step(client, op.name, steps // 2 + every // 4)
            [first] = placements(client, op.name)
            assert len(set(first)) == 2, f"both workers on one node: {first}"
            nodes[1].kill()  # the worker node, as a lost host
            nodes.append(
                raynodes.start_worker(head, num_cpus=1, log=logs / "w2.log", python=bare_python)
            )
            done = wait_done(client, op, pb.TrainModelResponse)
            assert done.steps == steps
            again, second = placements(client, op.name)
            assert again == first
            assert len(set(second)) == 2, f"both workers on one node after the restart: {second}"
            # The head's worker stayed put; the lost node's worker moved to the new node.
            assert len(set(first) & set(second)) == 1, (first, second)
            # Every step recorded once, the second group starting from the newest checkpoint
            # (a fresh start would train steps 1.. again): at most one interval trained twice.
            assert loss_steps(client, op.name) == list(range(1, steps + 1))
            first_start, restart = group_starts(client, op.name)
            assert first_start == 0 and restart >= steps // 2 + every // 4 - every, restart
    finally:
        if service is not None:
            service.terminate()
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)
