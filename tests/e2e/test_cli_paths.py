"""Paths and column lists as a person types them into the `forgeline` CLI.

A service resolves the paths it is sent against its own first data root. When the CLI starts the
stack itself, it resolves them where they were written first (a pipeline file's paths against
its folder, `--set` values against the current directory) and the stack reads them; against a
running service the CLI says how paths resolve. `--keep a,b` names two columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgeline.gateway.local_run import local_run
from forgeline.raynodes import free_port
from tests.conftest import ServiceProcess

PIPELINE = """
apiVersion: forgeline/v1
kind: Pipeline
metadata: {name: paths}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {source: ../data/reviews.csv, name: from-the-file}
  - name: more
    call: data.IngestDataset
    with: {source: SET_ON_THE_COMMAND_LINE, name: from-the-command-line}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    home = tmp_path_factory.mktemp("paths-home")
    root = tmp_path_factory.mktemp("paths-root")
    process = ServiceProcess("data", home, [root]).start()
    yield process, root
    assert process.terminate() == 0


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`forgeline ARGS` run in ``cwd`` with only the FORGELINE_* settings in ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FORGELINE_")}
    environment.update({"FORGELINE_HOME": str(cwd / ".forgeline"), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "forgeline", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=180,
    )


def project(folder: Path) -> tuple[Path, Path]:
    """A pipeline file in project/pipelines/ reading project/data/reviews.csv (3 rows), and a
    working directory holding more.csv (2 rows)."""
    (folder / "project" / "pipelines").mkdir(parents=True)
    (folder / "project" / "data").mkdir()
    (folder / "project" / "data" / "reviews.csv").write_text(
        "text,label\ngood soup,pos\ncold soup,neg\nfresh bread,pos\n"
    )
    pipeline = folder / "project" / "pipelines" / "reviews.yaml"
    pipeline.write_text(PIPELINE)
    work = folder / "work"
    work.mkdir()
    (work / "more.csv").write_text("text,label\nfast delivery,pos\nslow delivery,neg\n")
    return pipeline, work


def test_keep_takes_comma_separated_and_repeated_columns(data, tmp_path):
    process, root = data
    (root / "wide.csv").write_text("text,label,a,b,c,d\nx,p,1,2,3,4\ny,n,5,6,7,8\n")
    done = cli(
        "data", "ingest", str(root / "wide.csv"), "--keep", "a, b", "--keep", "c,a", "--json",
        cwd=tmp_path, FORGELINE_ADDRESSES=json.dumps({"data": process.address}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    columns = [c["name"] for c in json.loads(done.stdout)["columns"]]
    assert columns == ["text", "label", "a", "b", "c"]


def test_a_path_the_service_cannot_reach_says_how_paths_resolve(data, tmp_path):
    process, _ = data
    (tmp_path / "here.csv").write_text("text,label\nx,p\n")
    address = json.dumps({"data": process.address})
    # here.csv is in the current directory, which is not the service's data root.
    relative = cli("data", "ingest", "here.csv", cwd=tmp_path, FORGELINE_ADDRESSES=address)
    assert relative.returncode == 1
    assert "NOT_FOUND" in relative.stderr
    assert "relative to the service's first data root" in " ".join(relative.stderr.split())
    outside = cli(
        "data", "ingest", str(tmp_path / "here.csv"), cwd=tmp_path, FORGELINE_ADDRESSES=address
    )
    assert outside.returncode == 1
    assert "PERMISSION_DENIED" in outside.stderr
    assert "must lie inside its data roots" in " ".join(outside.stderr.split())

    shown = cli("data", "ingest", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert "relative to its first data root" in " ".join(shown.stdout.replace("│", " ").split())


def test_a_stack_the_cli_starts_reads_paths_where_they_were_written(tmp_path):
    _, work = project(tmp_path)
    elsewhere = tmp_path / "configured-root"
    elsewhere.mkdir()
    home = tmp_path / "home"
    done = cli(
        "run", "../project/pipelines/reviews.yaml", "--set", "more.with.source=more.csv", "--json",
        cwd=work,
        FORGELINE_HOME=str(home),
        FORGELINE_GATEWAY=f"127.0.0.1:{free_port()}",  # none answers: an embedded stack
        FORGELINE_DATA_ROOTS=str(elsewhere),  # neither file is under it
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded stack" in done.stderr
    run = json.loads(done.stdout)
    rows = {s["name"]: int(s["response"]["rows_read"]) for s in run["steps"]}
    assert rows == {"ingest": 3, "more": 2}
    # Only what the steps call (and the audit log's service) was started.
    assert sorted(p.stem for p in (home / "logs").glob("*.log")) == ["data", "gateway", "safety"]


def test_a_running_gateway_is_named_with_the_paths_its_services_resolve(data, tmp_path):
    process, root = data
    pipeline, work = project(tmp_path)
    gateway = ServiceProcess(
        "gateway",
        tmp_path,
        [root],
        env={"FORGELINE_ADDRESSES": json.dumps({"data": process.address})},
    ).start()
    try:
        done = cli("validate", str(pipeline), cwd=work, FORGELINE_GATEWAY=gateway.address)
    finally:
        assert gateway.terminate() == 0
    assert done.returncode == 0, done.stderr
    note = " ".join(done.stderr.split())
    assert f"the gateway at {gateway.address} was not started by this command" in note
    assert "steps.ingest.with.source" in note and "steps.more.with.source" in note


def test_only_path_fields_are_resolved_and_only_local_ones(tmp_path):
    text = """
apiVersion: forgeline/v1
kind: Pipeline
metadata: {name: fields}
steps:
  - name: web
    call: data.IngestDataset
    with: {source: "https://example.com/reviews.csv", name: "web.csv"}
  - name: train
    call: training.TrainModel
    with:
      train: {dataset_id: "${{ steps.web.dataset.artifact.id }}"}
      model: {path: models/tiny}
  - name: theirs
    call: acme.DoThing
    with: {source: mine.csv}
"""
    folder, cwd = tmp_path / "pipelines", tmp_path / "cwd"
    local = local_run(
        text,
        ["train.with.model={path: ./other}", "web.with.name=x.csv"],
        folder,
        cwd,
        ["data", "training", "safety", "tuning"],
    )
    # The override replaced the model the file named: only the override's path is read.
    assert local.paths == [cwd / "other"]
    assert local.overrides == [
        'train.with.model={"path": "' + str(cwd / "other") + '"}',
        "web.with.name=x.csv",
    ]
    assert local.relative == ["overrides[0].model.path"]
    assert "https://example.com/reviews.csv" in local.text and "mine.csv" in local.text
    assert local.services == ["data", "safety", "training"]

    plain = local_run(text, [], folder, cwd, ["data", "training", "safety"])
    assert plain.paths == [folder / "models" / "tiny"]
    assert "${{ steps.web.dataset.artifact.id }}" in plain.text
