"""Shared fixtures: real forgeline services on loopback ports (in-process or as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from forgeline.client import Client
from forgeline.server import ServiceThread  # noqa: F401 - the tests import it from here
from forgeline.settings import Settings

# The services, clients and tiny data the integration folders share (tests/fixtures.py).
pytest_plugins = ["tests.fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
# The e2e quality tests run what their goals judge; FORGELINE_E2E_ALL=1 adds the runs that are
# only reported beside them (minutes of MiniLM training each, kept out of the 20-minute suite).
E2E_ALL = os.environ.get("FORGELINE_E2E_ALL") == "1"


def shared_data(relative: str) -> Path:
    """A file under ../shared/data, or a clean skip when this checkout has none."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"../shared/data/{relative} is not present in this checkout")
    return path


def make_settings(home: Path, roots: list[Path], **overrides) -> Settings:
    return Settings(home=home, data_roots=roots, grace_seconds=1.0, **overrides)


def review_texts(per_label: int) -> tuple[list[str], list[str]]:
    """``per_label`` positive and negative short reviews and their labels: a tiny labelled set."""
    texts = [f"good food {i}" for i in range(per_label)] + [
        f"cold soup {i}" for i in range(per_label)
    ]
    return texts, ["pos"] * per_label + ["neg"] * per_label


def store_reviews(home: Path, per_label: int) -> str:
    """Saves ``review_texts(per_label)`` as dataset "reviews" in the artifact store under ``home``
    (before a service over that home starts) and returns its id."""
    import pyarrow as pa

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.datasets import DatasetRepository

    texts, labels = review_texts(per_label)
    store = ArtifactStore(home / "artifacts")
    try:
        return (
            DatasetRepository(store)
            .save(
                pa.table({"text": texts, "label": labels}),
                name="reviews",
                text_column="text",
                label_column="label",
                lineage=Lineage(),
            )
            .id
        )
    finally:
        store.close()


@contextmanager
def serving(name: str, settings: Settings) -> Iterator[Client]:
    """Service ``name`` in this process on a loopback port, and a ready client to it."""
    service = ServiceThread(name, settings).start()
    try:
        with Client(service.address) as c:
            c.wait_ready()
            yield c
    finally:
        service.stop()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture(scope="session")
def data_service(tmp_path_factory, data_root) -> Iterator[ServiceThread]:
    roots = [data_root] + ([SHARED_DATA] if SHARED_DATA.exists() else [])
    service = ServiceThread("data", make_settings(tmp_path_factory.mktemp("home"), roots))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def client(data_service) -> Iterator[Client]:
    with Client(data_service.address) as c:
        c.wait_ready()
        yield c


class ServiceProcess:
    """`forgeline serve NAME --port 0` as a real process (for kill/restart tests)."""

    def __init__(self, name: str, home: Path, roots: list[Path], env: dict | None = None):
        self.name, self.home, self.roots = name, home, roots
        self.env = {
            **os.environ,
            "FORGELINE_HOME": str(home),
            "FORGELINE_DATA_ROOTS": ",".join(map(str, roots)),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> ServiceProcess:
        self.log = open(self.home / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeline", "serve", self.name, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=self.env,
            cwd=REPO,
        )
        line = self.proc.stdout.readline().decode()
        if "serving on" not in line:
            self.proc.kill()
            raise RuntimeError(f"service did not start: {line!r}; see {self.log.name}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole test session (starting it costs ~8 s)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            address="local",  # a cluster of its own, never "the latest Ray on this machine"
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[dict[str, str]]:
    """A real S3 API on loopback (moto's server, in a thread of the test process) with one bucket;
    yields the environment a process needs to reach it (the AWS_* variables, set here too) and
    ``uri``, the bucket's FORGELINE_ARTIFACT_URI."""
    server_module = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "forgeline-test",
        "AWS_SECRET_ACCESS_KEY": "forgeline-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="forgeline")
    try:
        yield {
            **env,
            "endpoint": f"http://{host}:{port}",
            "uri": f"s3://forgeline/artifacts?endpoint_override={host}:{port}&scheme=http",
        }
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
