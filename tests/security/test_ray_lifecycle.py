"""A service that started its own local Ray takes all of that Ray down with it, whether it stops
on SIGTERM or is killed with SIGKILL: no raylet, GCS, dashboard or agent of that session is left
running on the machine (issue 18, item 14: the dashboard and runtime-env agents outlived the
training service after both signals).

Each test runs a real `forgeline serve training` with no RAY_ADDRESS, so its first operation
starts a local head (inside the operation, not while the request is accepted, which the
operation's events show), and signals the service once Ray is up. Each costs one Ray start.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from forgeline.client import Client
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from forgeline.v1.event_service_pb2 import Event
from tests.conftest import ServiceProcess, store_reviews
from tests.fixtures import tiny_bert

pytestmark = pytest.mark.slow

# What a Ray head is made of; each must be among the processes the test watches, or it would
# prove nothing.
RAY_PARTS = ("raylet", "gcs_server", "dashboard", "DashboardAgent", "RuntimeEnvAgent")
# The watchdog notices a killed service within a fraction of a second; `ray start` then stops
# its node in a few seconds, and the watchdog kills what is left after its grace (10 s). Before
# the fix, the agents hung for a minute or more, reporting to a GCS that had died.
GONE_WITHIN_S = 30.0


def service_with_a_dataset(tmp_path: Path) -> tuple[ServiceProcess, str]:
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    dataset_id = store_reviews(home, 8)
    service = ServiceProcess("training", home, [root], env={"FORGELINE_GRACE_SECONDS": "5"})
    # No RAY_ADDRESS (nor another Ray's token): the service starts a head of its own.
    service.env = {k: v for k, v in service.env.items() if not k.startswith("RAY_")}
    return service.start(), dataset_id


def start_ray_through_a_submit(client: Client, dataset_id: str) -> Iterator[Event]:
    """Submits a long run: accepted at once (Ray is not reached while accepting), then, inside
    the operation, a local head starts. Returns the operation's event stream, still open (a
    call in flight, which a graceful stop waits for), once Ray is up."""
    op = client.training.TrainModel(
        pb.TrainModelRequest(
            train=common_pb2.DatasetInput(dataset_id=dataset_id),
            model=tiny_bert(),
            hyper_parameters=common_pb2.HyperParameters(batch_size_per_worker=2, max_steps=100_000),
        ),
        timeout=120,  # the planner's first import of transformers, on a loaded machine
    )
    events = client.stream_events(op.name)
    progress = (e.progress.message for e in events if e.HasField("progress"))
    # Inside the operation, in this order: Ray was started for it, after it had been accepted.
    assert next(progress) == "starting a local Ray head"
    assert next(progress).startswith("Ray is up: ")
    return events


def ray_session(service: ServiceProcess) -> tuple[list[psutil.Process], Path]:
    """Every process of the Ray head ``service`` started: its descendants (the watchdog, `ray
    start`, GCS, raylet, agents, workers) and anything naming the head's own temp dir, which
    comes second."""
    tree = psutil.Process(service.proc.pid).children(recursive=True)
    temp_dirs = {
        arg.split("=", 1)[1]
        for p in tree
        for arg in _cmdline(p)
        if arg.startswith("--remove=")  # the watchdog removes the head's temp dir at the end
    }
    assert len(temp_dirs) == 1, f"no watchdog among {[_name(p) for p in tree]}"
    (temp_dir,) = temp_dirs
    named = [
        p
        for p in psutil.process_iter()
        if p.pid != service.proc.pid and any(temp_dir in arg for arg in _cmdline(p))
    ]
    session = {p.pid: p for p in tree + named}
    names = " ".join(_name(p) for p in session.values())  # e.g. raylet, ray::DashboardAgent
    missing = [part for part in RAY_PARTS if part not in names]
    assert not missing, f"{missing} not found among the session's processes: {names}"
    return list(session.values()), Path(temp_dir)


def assert_all_gone(session: list[psutil.Process], how: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while alive := [p for p in session if _running(p)]:
        if time.monotonic() > deadline:
            left = ", ".join(f"{_name(p)} ({p.pid})" for p in alive)
            for p in alive:  # do not leave them to the next test
                _kill(p)
            pytest.fail(f"{GONE_WITHIN_S:.0f} s after the service's {how}, still running: {left}")
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_ray_a_service_started_ends_with_it(tmp_path, how):
    """SIGTERM while a run trains and a call is in flight: the graceful stop takes seconds
    (it waits out the call for FORGELINE_GRACE_SECONDS), long enough that Ray's crash handler,
    which also took SIGTERM, used to abort the service mid-stop, leaving its Ray behind."""
    service, dataset_id = service_with_a_dataset(tmp_path)
    session: list[psutil.Process] = []
    temp_dir = None
    try:
        with Client(service.address) as client:
            client.wait_ready()
            in_flight = start_ray_through_a_submit(client, dataset_id)
            session, temp_dir = ray_session(service)
            if how == "SIGTERM":
                assert service.terminate() == 0  # a graceful stop, Ray's included
            else:
                service.proc.send_signal(signal.SIGKILL)
                service.proc.wait(10)
            in_flight.close()
        assert_all_gone(session, how)
        assert temp_dir is not None and not temp_dir.exists()  # the session's files went too
    finally:
        if service.proc.poll() is None:
            service.kill()
        for p in session:
            _kill(p)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _name(process: psutil.Process) -> str:
    """What the process runs: its program, or the script or module its Python runs."""
    for arg in _cmdline(process):
        words = arg.split()
        name = Path(words[0]).name if words else ""
        if name and not name.startswith(("python", "-")):
            return name
    return "?"


def _kill(process: psutil.Process) -> None:
    try:
        if _running(process):
            process.kill()
    except psutil.Error:
        pass
