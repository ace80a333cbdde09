"""A tuning service on a loopback port, sharing the test session's local Ray, with the training
tests' datasets and tiny models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forgeline.client import Client
from tests.conftest import ServiceThread, make_settings
from tests.integration.training.conftest import Workspace


@pytest.fixture(scope="session")
def tuning(tmp_path_factory, ray_local) -> Iterator[Workspace]:
    home = tmp_path_factory.mktemp("tuning-home")
    root = tmp_path_factory.mktemp("tuning-data")
    service = ServiceThread("tuning", make_settings(home, [root]))
    service.start()
    yield Workspace(home, service)
    service.stop()


@pytest.fixture(scope="session")
def tuner(tuning) -> Iterator[Client]:
    with Client(tuning.service.address) as c:
        c.wait_ready()
        yield c
