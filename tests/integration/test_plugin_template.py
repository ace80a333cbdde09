"""examples/plugin-template installed as a real third-party package: a service finds it by its
entry point, lists it, validates its config and runs it; forgeline's pytest plugin certifies it.

The package is built and installed into a temporary folder (never into .venv) that reaches the
service process, and the pytest subprocesses, only through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.client import Client
from forgeline.convert import from_struct, struct
from forgeline.errors import InvalidArgument
from forgeline.v1 import common_pb2, plugin_service_pb2
from forgeline.v1 import data_service_pb2 as pb
from tests.conftest import REPO, ServiceProcess
from tests.fixtures import pip_install

TEMPLATE = REPO / "examples" / "plugin-template"
DISTRIBUTION = "forgeline-plugin-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The template built and installed with pip into a fresh folder; returns that folder."""
    target = pip_install(TEMPLATE, tmp_path_factory.mktemp("plugin-template"))
    assert (target / "forgeline_plugin_example" / "cleaners.py").is_file()
    return target


@pytest.fixture(scope="module")
def service(site, tmp_path_factory) -> Iterator[ServiceProcess]:
    home = tmp_path_factory.mktemp("plugin-template-home")
    process = ServiceProcess("data", home, [home], env={"PYTHONPATH": str(site)}).start()
    yield process
    assert process.terminate() == 0  # SIGTERM is a graceful stop


@pytest.fixture(scope="module")
def client(service) -> Iterator[Client]:
    """A client of this module's service (it overrides conftest's shared data service)."""
    with Client(service.address) as c:
        c.wait_ready()
        yield c


def mask_urls(**config) -> common_pb2.PluginSpec:
    return common_pb2.PluginSpec(name="mask_urls", config=struct(config))


def upload(client: Client, name: str, rows: list[dict]) -> pb.Dataset:
    def messages():
        yield pb.UploadRecordsRequest(header=pb.UploadHeader(name=name))
        yield pb.UploadRecordsRequest(batch=pb.RecordBatch(rows=[struct(r) for r in rows]))
        yield pb.UploadRecordsRequest(commit=pb.UploadCommit())

    return client.data.UploadRecords(messages()).dataset


def read_rows(client: Client, dataset_id: str) -> list[dict]:
    request = pb.ReadRowsRequest(dataset_id=dataset_id)
    return [from_struct(row) for batch in client.data.ReadRows(request) for row in batch.rows]


ROWS = [
    {"text": "order at https://shop.example.com/menu?id=7 today", "label": "pos"},
    {"text": "two links: http://a.io and www.b.org/deals.", "label": "neg"},
    {"text": "no link in this one", "label": "pos"},
]


def test_list_plugins_shows_the_cleaner_with_its_package_and_schema(client):
    reply = client.plugins.ListPlugins(plugin_service_pb2.ListPluginsRequest(kind="cleaners"))
    found = {p.name: p for p in reply.plugins}
    assert "mask_urls" in found, f"listed: {sorted(found)}; load errors: {reply.load_errors}"
    info = found["mask_urls"]
    assert (info.kind, info.distribution, info.version) == ("cleaners", DISTRIBUTION, "0.1.0")
    assert info.description == "Replaces URLs in the text column with a placeholder such as <url>."
    schema = json.loads(info.config_schema_json)
    assert schema["properties"]["replacement"]["default"] == "<url>"
    assert schema["properties"]["replacement"]["description"]
    assert schema["additionalProperties"] is False
    assert not [e for e in reply.load_errors if e.distribution == DISTRIBUTION]


def test_clean_dataset_masks_urls(client):
    dataset = upload(client, "links", ROWS)
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(dataset_id=dataset.artifact.id, cleaners=[mask_urls()])
    )
    result = client.wait(op, pb.CleanDatasetResponse, timeout=60)

    assert [r["text"] for r in read_rows(client, result.dataset.artifact.id)] == [
        "order at <url> today",
        "two links: <url> and <url>.",
        "no link in this one",
    ]
    assert [r["label"] for r in read_rows(client, result.dataset.artifact.id)] == [
        "pos",
        "neg",
        "pos",
    ]
    (step,) = result.steps
    assert (step.cleaner, step.rows_in, step.rows_out) == ("mask_urls", 3, 3)
    assert from_struct(step.details) == {"rows_changed": 2.0, "urls_masked": 3.0}
    assert [(e.text, e.reason) for e in step.examples] == [
        (ROWS[0]["text"], "url masked"),
        (ROWS[1]["text"], "url masked"),
    ]
    assert list(result.dataset.artifact.lineage.parent_ids) == [dataset.artifact.id]
    assert result.dataset.version == 2


def test_clean_dataset_passes_the_config(client):
    dataset = upload(client, "links-config", ROWS[:1])
    op = client.data.CleanDataset(
        pb.CleanDatasetRequest(
            dataset_id=dataset.artifact.id, cleaners=[mask_urls(replacement="[link]")]
        )
    )
    result = client.wait(op, pb.CleanDatasetResponse, timeout=60)
    assert read_rows(client, result.dataset.artifact.id)[0]["text"] == "order at [link] today"


def test_a_bad_config_is_refused_naming_the_field(client):
    dataset = upload(client, "links-bad", ROWS[:1])
    request = pb.CleanDatasetRequest(dataset_id=dataset.artifact.id, cleaners=[mask_urls(nope=1)])
    with pytest.raises(InvalidArgument) as caught:
        client.data.CleanDataset(request)
    assert [v.field for v in caught.value.violations] == ["cleaners[0].config.nope"]


def _pytest(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


CONTRACT_TESTS = 7  # the cleaner suite's tests in forgeline.testing.suites.cleaners


def test_its_own_tests_and_forgeline_contracts_pass_outside_the_checkout(site):
    """The template certifies itself through forgeline's pytest plugin alone: it runs from its
    copy in a temporary folder, where nothing of forgeline's tests/ can be imported."""
    source = site.parent / "source"
    assert REPO not in source.parents

    done = _pytest(["-v"], source, site)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout and "passed" in done.stdout
    certified = [
        line
        for line in done.stdout.splitlines()
        if "test_forgeline_contracts.py::" in line and "PASSED" in line
    ]
    # One id per plugin of this distribution only: forgeline's pytest plugin parametrized them.
    assert len(certified) == CONTRACT_TESTS, done.stdout[-3000:]
    assert all("[mask_urls]" in line for line in certified), done.stdout[-3000:]


def test_the_option_names_the_distribution_to_certify(site):
    source = site.parent / "source"
    done = _pytest(
        ["-q", "tests/test_forgeline_contracts.py", "--forgeline-contracts=forgeline-plugin-nope"],
        source,
        site,
    )
    assert done.returncode != 0
    assert "no forgeline plugin of distribution 'forgeline-plugin-nope'" in done.stderr
