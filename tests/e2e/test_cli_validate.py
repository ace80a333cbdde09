"""`forgeline validate` as a newcomer meets it: a shipped pipeline checked offline with no
gateway and no service, a misspelt name answered with the name meant, a YAML slip named by file
and line, and each problem printed once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeline.server import installed_services

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "pipelines").glob("*.yaml"))
# The CLI under an audit hook that reports every process it starts (an embedded stack is one
# process per service). gRPC's sockets are not Python's: a listener stands in for the gateway
# and every service instead, and must see no connection.
WATCHED = """
import sys

def report(event, args):
    if event in ("subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system"):
        sys.stderr.write(f"STARTED {event}\\n")

sys.addaudithook(report)
sys.argv = ["forgeline", *sys.argv[1:]]
from forgeline.cli import main
main()
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that answers nothing: where every service and the gateway are said to be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def cli(*args: str, cwd: Path, listener: socket.socket) -> subprocess.CompletedProcess:
    """`forgeline ARGS` in ``cwd``, every address pointing at ``listener``."""
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FORGELINE_")}
    environment.update(
        FORGELINE_HOME=str(cwd / ".forgeline"),
        FORGELINE_GATEWAY=address,
        FORGELINE_ADDRESSES=json.dumps({name: address for name in installed_services()}),
        COLUMNS="400",
    )
    return subprocess.run(
        [sys.executable, "-c", WATCHED, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
    )


def assert_nothing_started(done: subprocess.CompletedProcess, listener, cwd: Path) -> None:
    assert "STARTED" not in done.stderr, done.stderr
    assert "embedded stack" not in done.stderr
    with pytest.raises(BlockingIOError):
        listener.accept()[0].close()  # nobody connected to a gateway or a service
    assert not (cwd / ".forgeline" / "logs").exists()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_shipped_pipeline_validates_offline_with_no_service(example, listener, tmp_path):
    done = cli("validate", "--offline", str(example), "--json", cwd=tmp_path, listener=listener)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [s["name"] for s in plan["steps"]]
    assert all(s["method"].startswith("forgeline.v1.") for s in plan["steps"])
    assert any("exist" in line for line in plan["notChecked"])  # it says what it skipped
    assert_nothing_started(done, listener, tmp_path)


def test_a_misspelt_name_is_answered_with_the_name_meant_each_problem_once(listener, tmp_path):
    text = (EXAMPLES[0].parent / "quickstart.yaml").read_text()
    for right, wrong in [
        ("call: training.TrainModel", "call: trainig.TrainModel"),
        ("call: data.SplitDataset", "call: data.SplitDatset"),
        ("{name: dedup_exact}", "{name: dedup_exakt}"),
        ("accuracy >= 0.75", "acuracy >= 0.75"),
    ]:
        assert right in text
        text = text.replace(right, wrong)
    (tmp_path / "typos.yaml").write_text(text)
    done = cli("validate", "--offline", "typos.yaml", cwd=tmp_path, listener=listener)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines.count("error INVALID_ARGUMENT PIPELINE_INVALID: the pipeline is not valid") == 1
    violations = [line for line in lines if line.startswith("  - steps.")]
    assert len(violations) == len(set(violations)) == 4, done.stderr
    errors = "\n".join(violations)
    for said in [
        "no service 'trainig' (did you mean 'training'?)",
        "no long-running method 'SplitDatset' (did you mean 'SplitDataset'?)",
        "no cleaners plugin 'dedup_exakt' (did you mean 'dedup_exact'",
        "no metric 'acuracy' (did you mean 'accuracy'?)",
    ]:
        assert said in errors, errors
    assert "not checked offline" in done.stderr
    assert_nothing_started(done, listener, tmp_path)


def test_the_status_is_printed_once_and_the_violation_once(listener, tmp_path):
    done = cli("validate", "--offline", "nope.yaml", cwd=tmp_path, listener=listener)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error INVALID_ARGUMENT",
        "  - PIPELINE: cannot read nope.yaml: No such file or directory",
    ]


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "with-a-gateway"])
def test_a_yaml_slip_names_the_file_and_line_once_and_starts_nothing(offline, listener, tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: forgeline/v1\nkind: Pipeline\nmetadata: {name: b}\nsteps:\n"
        "  - name: ingest\n    call: data.IngestDataset\n    with: {source: x.csv\n"
    )
    args = ["validate", *(["--offline"] if offline else []), "broken.yaml"]
    done = cli(*args, cwd=tmp_path, listener=listener)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error INVALID_ARGUMENT PIPELINE_INVALID: the pipeline is not valid",
        "  - broken.yaml: not valid YAML: line 8, column 1: expected ',' or '}', but got the end "
        "of the file (while parsing a flow mapping at line 7, column 11)",
    ]
    assert_nothing_started(done, listener, tmp_path)
