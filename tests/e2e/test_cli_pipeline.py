"""The `forgeline` CLI driving pipelines as a person would: `forgeline up`, `run` (a cached second
run, a failed gate, Ctrl-C), `validate`, `runs ...`, a gateway killed with SIGKILL in the middle of
a training step and restarted, and `forgeline down`. Every command is a subprocess; the services
are real processes sharing one FORGELINE_HOME, the training service with its own local Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.longrunning import operations_pb2

from forgeline.client import Client
from forgeline.raynodes import free_port
from forgeline.v1 import common_pb2
from tests.conftest import REPO
from tests.waiting import STALL_S

pytest.importorskip("ray")
# No fixed limit: every CLI call here carries its own timeout and the long waits follow
# the run's progress (Stack.wait_for), so a loaded machine slows the module, never kills it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]

GOOD = ["good food", "great taste", "fresh and tasty", "fast delivery", "lovely soup"]
BAD = ["cold food", "awful taste", "stale and salty", "slow delivery", "bland soup"]
TINY_BERT = (
    "{num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, intermediate_size: 64,"
    " max_position_embeddings: 128}"
)


class Stack:
    def __init__(self, root: Path) -> None:
        self.home, self.data = root / "home", root / "data"
        self.data.mkdir(parents=True)
        ports = {name: free_port() for name in ("gateway", "data", "training")}
        self.addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        self.env = {
            **os.environ,
            "FORGELINE_HOME": str(self.home),
            "FORGELINE_DATA_ROOTS": str(self.data),
            "FORGELINE_ADDRESSES": json.dumps(self.addresses),
            "FORGELINE_GATEWAY": self.addresses["gateway"],
            "COLUMNS": "200",
            "TOKENIZERS_PARALLELISM": "false",
        }

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "forgeline", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "forgeline", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=REPO,
        )

    def json(self, *args: str):
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def pipeline(self, name: str, text: str) -> str:
        path = self.home.parent / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    def run_of(self, run: str) -> dict:
        return self.json("runs", "show", run)

    def wait_for(self, run: str, predicate, stall_s: float = STALL_S) -> dict:
        """The run once ``predicate`` holds, looked at every second for as long as the run
        keeps changing (its steps' states, messages, latest metrics); fails once it has stayed
        the same for ``stall_s`` seconds, whatever the machine's load."""
        got, changed = self.run_of(run), time.monotonic()
        while not predicate(got):
            silent = time.monotonic() - changed
            assert silent < stall_s, f"{run} made no progress for {silent:.0f}s: {got}"
            time.sleep(1)
            now = self.run_of(run)
            if now != got:
                got, changed = now, time.monotonic()
        return got


def steps_of(run: dict) -> dict[str, dict]:
    return {s["name"]: s for s in run["steps"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("cli-pipeline"))
    lines = [f"{text} {i},{'pos' if text in GOOD else 'neg'}" for i in range(12) for text in GOOD]
    lines += [f"{text} {i},neg" for i in range(12) for text in BAD]
    (stack.data / "reviews.csv").write_text(
        "text,label\n" + "\n".join(lines + lines[:30]) + "\n", encoding="utf-8"
    )
    up = stack.cli("up", timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    for name, address in stack.addresses.items():
        assert name in up.stdout and address in up.stdout
    yield stack
    for proc in getattr(stack, "extra", []):
        proc.kill()
        proc.wait(10)
    down = stack.cli("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert not (stack.home / "stack.json").exists()


def data_steps(source: str, gate: str = "dataset.num_rows >= 100") -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: cli-reviews}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{source}"}}
  - name: clean
    call: data.CleanDataset
    with:
      dataset_id: ${{{{ steps.ingest.dataset.artifact.id }}}}
      cleaners: [{{name: dedup_exact}}]
    gates: ["{gate}"]
  - name: split
    call: data.SplitDataset
    with:
      dataset_id: ${{{{ steps.clean.dataset.artifact.id }}}}
      train_fraction: 0.75
      validation_fraction: 0.25
      stratify: true
      seed: 1
"""


def training_steps(max_steps: int) -> str:
    return f"""
  - name: train
    call: training.TrainModel
    with:
      train: {{dataset_id: "${{{{ steps.split.train.artifact.id }}}}"}}
      model:
        from_config: {{model_type: bert, vocab_size: 120, config: {TINY_BERT}}}
      task: TASK_SEQUENCE_CLASSIFICATION
      finetune: {{name: full}}
      hyper_parameters: {{learning_rate: 0.001, batch_size_per_worker: 4, max_steps: {max_steps}}}
      checkpoint: {{every_steps: 200}}
  - name: evaluate
    call: training.EvaluateModel
    with:
      model_id: ${{{{ steps.train.model.id }}}}
      dataset: {{dataset_id: "${{{{ steps.split.validation.artifact.id }}}}"}}
    gates: ["accuracy >= 0.0"]
"""


def test_status_shows_every_service_serving(stack):
    rows = stack.json("status")
    assert {r["service"]: r["serving"] for r in rows} == {
        "gateway": True,
        "data": True,
        "training": True,
        "tuning": True,
        "compression": True,
        "memory": True,
        "safety": True,
        "serving": True,
        "http": True,  # the HTTP face: up with the rest, seen through its /healthz
    }


def test_a_run_prints_its_gates_and_report_and_a_second_run_comes_from_the_cache(stack):
    path = stack.pipeline("data", data_steps(str(stack.data / "reviews.csv")))
    first = stack.cli("run", path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "gate pass clean: dataset.num_rows >= 100 (dataset.num_rows = 120 passes" in first.stdout
    assert "run SUCCEEDED" in first.stdout
    report = Path(first.stdout.split("report: ", 1)[1].split()[0])
    assert report.name == "report.html" and "Cleaning funnel" in report.read_text()

    second = json.loads(stack.cli("run", path, "--json").stdout)
    assert second["state"] == "OPERATION_STATE_SUCCEEDED"
    assert all(s.get("cached") for s in second["steps"]), second["steps"]
    third = json.loads(stack.cli("run", path, "--json", "--no-cache").stdout)
    assert not any(s.get("cached") for s in third["steps"])

    listed = stack.json("runs", "list", "--pipeline", "cli-reviews")
    assert [r["name"] for r in listed][:3] == [third["name"], second["name"], first_run(first)]
    twin = stack.cli("runs", "report", third["name"], "--json")
    assert json.loads(twin.stdout)["run"] == third["name"]


def first_run(done: subprocess.CompletedProcess) -> str:
    return next(w for w in done.stdout.split() if w.startswith("operations/"))


def test_a_failed_gate_exits_1_and_says_by_how_much(stack):
    path = stack.pipeline(
        "gate", data_steps(str(stack.data / "reviews.csv"), gate="dataset.num_rows >= 1000")
    )
    done = stack.cli("run", path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gate FAIL clean: dataset.num_rows >= 1000" in done.stdout
    assert "880 below the gate >= 1000" in done.stdout
    run = steps_of(stack.run_of(first_run(done)))
    assert run["split"]["state"] == "STEP_STATE_SKIPPED"


def test_validate_names_every_problem_at_once(stack):
    broken = (
        data_steps(str(stack.data / "reviews.csv"))
        .replace("dedup_exact", "dedupe")
        .replace("train_fraction: 0.75", "train_fraction: lots")
        .replace('["dataset.num_rows >= 100"]', '["bleu >= 1"]')
        .replace("steps.ingest.dataset", "steps.split.dataset")  # a cycle: clean <-> split
    )
    broken += """
  - name: stray
    call: dta.ProfileDataset
    with: {dataset_id: "${{ steps.nowhere.dataset.artifact.id }}"}
"""
    path = stack.pipeline("broken", broken)
    done = stack.cli("validate", path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = " ".join(done.stderr.split())  # rich wraps long lines
    for field, words in [
        ("steps", "cycle"),
        ("steps.clean.with.cleaners[0].name", "dedup_exact"),  # the known cleaners listed
        ("steps.split.with.train_fraction", "lots"),
        ("steps.clean.gates[0]", "bleu"),
        ("steps.stray.call", "no service 'dta'"),
        ("steps.stray.with.dataset_id", "no step 'nowhere'"),
    ]:
        assert f"- {field}: " in errors and words in errors, (field, errors)
    assert stack.cli("run", path).returncode == 1  # refused whole, nothing ran

    missing = stack.cli("validate", str(stack.home.parent / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_ctrl_c_cancels_the_run_and_its_training(stack):
    path = stack.pipeline(
        "slow", data_steps(str(stack.data / "reviews.csv")) + training_steps(20000)
    )
    proc = stack.popen("run", path, "--no-cache")
    try:
        run = wait_for_training(stack, "cli-reviews", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "cancelling" in err
    steps = steps_of(stack.run_of(run))
    assert steps["train"]["state"] == "STEP_STATE_CANCELLED"
    assert steps["evaluate"]["state"] == "STEP_STATE_SKIPPED"
    with Client(stack.addresses["training"]) as training:
        trained = training.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=steps["train"]["operation"])
        )
        assert trained.done
        assert training.metadata(trained).state == common_pb2.OPERATION_STATE_CANCELLED


def wait_for_training(stack: Stack, pipeline: str, proc: subprocess.Popen | None = None) -> str:
    """The newest run of ``pipeline`` once its train step has reported a loss."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, proc.communicate()
        runs = stack.json("runs", "list", "--pipeline", pipeline, "--limit", "1")
        if runs:
            train = steps_of(runs[0]).get("train", {})
            if train.get("operation") and train.get("metrics", {}).get("loss"):
                return runs[0]["name"]
        time.sleep(1)
    raise AssertionError("the training step never reported a loss")


def test_a_gateway_killed_mid_training_finishes_the_run_after_restart(stack):
    path = stack.pipeline(
        "train", data_steps(str(stack.data / "reviews.csv")) + training_steps(1500)
    )
    detached = stack.cli("run", path, "--detach", "--no-cache")
    assert detached.returncode == 0, detached.stderr
    run = detached.stdout.strip()
    assert wait_for_training(stack, "cli-reviews") == run
    before = steps_of(stack.run_of(run))
    operations_before = data_operations(stack)

    members = json.loads((stack.home / "stack.json").read_text())
    gateway = next(m for m in members if m["name"] == "gateway")
    os.kill(gateway["pid"], signal.SIGKILL)
    port = stack.addresses["gateway"].rsplit(":", 1)[1]
    log = open(stack.home / "gateway-restarted.log", "ab")  # noqa: SIM115 - kept by the process
    stack.extra = [
        subprocess.Popen(
            [sys.executable, "-m", "forgeline", "serve", "gateway", "--port", port],
            stdout=log,
            stderr=log,
            env=stack.env,
            cwd=REPO,
        )
    ]
    with Client(stack.addresses["gateway"]) as restarted:
        restarted.wait_ready(60)
    done = stack.wait_for(run, lambda r: r.get("end_time"))
    after = steps_of(done)
    assert done["state"] == "OPERATION_STATE_SUCCEEDED", done.get("message")
    assert after["train"]["operation"] == before["train"]["operation"]  # re-attached
    for name in ("ingest", "clean", "split"):  # finished before the kill: not run again
        assert after[name]["operation"] == before[name]["operation"]
        assert after[name]["end_time"] == before[name]["end_time"]
    assert int(after["train"]["response"]["steps"]) == 1500
    assert after["evaluate"]["state"] == "STEP_STATE_SUCCEEDED"
    assert data_operations(stack) == operations_before  # no data step ran twice
    stack.trained_run = run


def data_operations(stack: Stack) -> list[str]:
    with Client(stack.addresses["data"]) as data:
        listed = data.operations.ListOperations(
            operations_pb2.ListOperationsRequest(page_size=1000)
        )
        return sorted(op.name for op in listed.operations)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium here (scripts/ensure_chromium.sh installs it where it can)")
    return found


def test_the_report_of_a_training_run_renders_its_plots_in_chromium(stack, tmp_path):
    run = getattr(stack, "trained_run", None)
    if run is None:  # run alone: train briefly first
        path = stack.pipeline(
            "short", data_steps(str(stack.data / "reviews.csv")) + training_steps(60)
        )
        done = stack.cli("run", path, "--no-cache")
        assert done.returncode == 0, done.stdout + done.stderr
        run = first_run(done)
    page = Path(stack.cli("runs", "report", run).stdout.strip())
    text = page.read_text()
    for caption in (
        "Confusion matrix — evaluate",
        "Metrics per training step — train",
        "Cleaning funnel — clean",
    ):
        assert caption in text

    shot = tmp_path / "report.png"
    browser = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,3200",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert browser.returncode == 0 and shot.exists(), browser.stderr[-2000:]
    # The page loaded without script or resource errors (it has neither: any is a regression).
    assert "CONSOLE" not in browser.stderr and "Failed to load" not in browser.stderr

    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 3200)
    colours = image.getcolors(maxcolors=1 << 20)

    # The plots are drawn: the curves' and funnel's blue, and the confusion matrix's darkest
    # cell, are on the screenshot in quantity (an unrendered SVG leaves none of them).
    def pixels(rgb, tolerance=12):
        return sum(
            n
            for n, c in colours
            if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True))
        )

    assert pixels((0x4C, 0x78, 0xA8)) > 2000  # #4c78a8: curves and funnel bars
    assert pixels((0x08, 0x30, 0x6B)) > 500  # Blues colormap's darkest: the diagonal cells
