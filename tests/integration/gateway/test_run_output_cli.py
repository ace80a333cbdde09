"""`forgeline run` with its output captured (a CI log, a file): a line per step state change, no
live table, then the verdict; with --json those lines on stderr and the JSON alone on stdout.
Against a real gateway and data service in this process, the command a subprocess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.cli_runner import forgeline
from tests.conftest import ServiceThread
from tests.fixtures import data_gateway

LINE = re.compile(r"^\d\d:\d\d:\d\d  (\w+)\s+(RUNNING|SUCCEEDED|FAILED|SKIPPED|CANCELLED|\d+%)")


@pytest.fixture(scope="module")
def gateway(data_service, tmp_path_factory, data_root) -> Iterator[ServiceThread]:
    yield from data_gateway(tmp_path_factory, data_service, data_root)


@pytest.fixture(scope="module")
def pipeline(data_root) -> str:
    reviews = data_root / "run-output-reviews.csv"
    rows = [f"good food {i},pos" for i in range(20)] + [f"cold soup {i},neg" for i in range(20)]
    reviews.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = data_root / "run-output.yaml"
    path.write_text(
        f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: run-output}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{reviews}"}}
  - name: profile
    call: data.ProfileDataset
    with: {{dataset_id: "${{{{ steps.ingest.dataset.artifact.id }}}}"}}
""",
        encoding="utf-8",
    )
    return str(path)


def run(gateway, data_service, tmp_path, *args: str):
    addresses = {"gateway": gateway.address, "data": data_service.address}
    env = {"FORGELINE_GATEWAY": gateway.address, "FORGELINE_HOME": str(tmp_path)}
    return forgeline(addresses, "run", *args, "--no-cache", timeout=120, env=env)


def said(text: str) -> list[tuple[str, str]]:
    return [m.groups() for m in map(LINE.match, text.splitlines()) if m]


def test_a_captured_run_prints_a_line_per_step_state_and_then_its_verdict(
    gateway, data_service, pipeline, tmp_path
):
    done = run(gateway, data_service, tmp_path, pipeline)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # no cursor moves, no colours: a log
    first = out.splitlines()[0]
    assert re.match(r"^\d\d:\d\d:\d\d  run operations/\S+  2 steps: ingest, profile$", first), out
    states = [(step, state) for step, state in said(out) if not state.endswith("%")]
    assert states == [
        ("ingest", "RUNNING"),
        ("ingest", "SUCCEEDED"),
        ("profile", "RUNNING"),
        ("profile", "SUCCEEDED"),
    ], out
    assert out.index("profile  SUCCEEDED") < out.index("run SUCCEEDED")  # the verdict last


def test_with_json_the_lines_go_to_stderr_and_stdout_is_the_run(
    gateway, data_service, pipeline, tmp_path
):
    done = run(gateway, data_service, tmp_path, pipeline, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "OPERATION_STATE_SUCCEEDED"
    assert ("profile", "SUCCEEDED") in said(done.stderr), done.stderr
