"""The web console against a real stack in this process (data, training on the session's local
Ray, serving, gateway and the HTTP face, one home, auth on): its JSON and server-sent-event
routes over plain HTTP, then headless Chromium driven by Selenium (Debian's chromium and
chromium-driver) opening the runs list, following a running pipeline to its end, cancelling
one, comparing two and trying two deployments. Each page's screenshot is written under
build/test-artifacts/console/ (FORGELINE_TEST_ARTIFACTS overrides the folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.client import Client
from forgeline.models import SEQUENCE_CLASSIFICATION
from forgeline.services.http.server import HttpThread
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as ppb
from forgeline.v1 import serving_service_pb2 as spb
from tests.conftest import REPO, ServiceThread, make_settings
from tests.integration.serving.conftest import LABELS, tiny_classifier
from tests.tiny_llm import tiny_llama_folder

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TOKEN = "console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TINY_BERT = (
    "{num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, intermediate_size: 64,"
    " max_position_embeddings: 128}"
)
SVG_NAMESPACE = "http://www.w3.org/"  # a name, never fetched
SHOTS = Path(os.environ.get("FORGELINE_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))


def data_pipeline(name: str, source: str, train_fraction: float) -> str:
    return f"""
apiVersion: forgeline/v1
kind: Pipeline
metadata: {{name: {name}}}
steps:
  - name: ingest
    call: data.IngestDataset
    with: {{source: "{source}"}}
  - name: clean
    call: data.CleanDataset
    with:
      dataset_id: ${{{{ steps.ingest.dataset.artifact.id }}}}
      cleaners: [{{name: dedup_exact}}]
    gates: ["dataset.num_rows >= 10"]
  - name: profile
    call: data.ProfileDataset
    with: {{dataset_id: "${{{{ steps.clean.dataset.artifact.id }}}}"}}
  - name: split
    call: data.SplitDataset
    with:
      dataset_id: ${{{{ steps.clean.dataset.artifact.id }}}}
      train_fraction: {train_fraction}
      validation_fraction: {round(1 - train_fraction, 2)}
      seed: 1
"""


def training_pipeline(name: str, source: str, max_steps: int) -> str:
    return (
        data_pipeline(name, source, 0.75)
        + f"""
  - name: train
    call: training.TrainModel
    with:
      train: {{dataset_id: "${{{{ steps.split.train.artifact.id }}}}"}}
      model:
        from_config: {{model_type: bert, vocab_size: 120, config: {TINY_BERT}}}
      task: TASK_SEQUENCE_CLASSIFICATION
      finetune: {{name: full}}
      hyper_parameters: {{learning_rate: 0.001, batch_size_per_worker: 4, max_steps: {max_steps}}}
  - name: evaluate
    call: training.EvaluateModel
    with:
      model_id: ${{{{ steps.train.model.id }}}}
      dataset: {{dataset_id: "${{{{ steps.split.validation.artifact.id }}}}"}}
    gates: ["accuracy >= 0.0"]
"""
    )


class Stack:
    def __init__(self, gateway: Client, url: str, csv: str, serving: Client) -> None:
        self.gateway, self.url, self.csv, self.serving = gateway, url, csv, serving

    def submit(self, text: str) -> str:
        """Submits a pipeline; its run id (the operation name without "operations/")."""
        operation = self.gateway.pipelines.SubmitPipeline(
            ppb.SubmitPipelineRequest(pipeline_yaml=text)
        )
        return operation.name.removeprefix("operations/")

    def run(self, run_id: str) -> ppb.PipelineRun:
        request = ppb.GetPipelineRunRequest(name=f"operations/{run_id}")
        return self.gateway.pipelines.GetPipelineRun(request).run

    def finished(self, run_id: str, timeout: float = 240) -> ppb.PipelineRun:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run.state not in (
                common_pb2.OPERATION_STATE_RUNNING,
                common_pb2.OPERATION_STATE_PENDING,
                common_pb2.OPERATION_STATE_UNSPECIFIED,
            ):
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s")

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, headers=AUTH, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, ray_local) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("console-home")
    work = tmp_path_factory.mktemp("console-work")
    lines = [
        f"{word} {i},{label}"
        for i in range(12)
        for word, label in (("good food", "pos"), ("cold soup", "neg"), ("fresh taste", "pos"))
    ]
    csv = work / "reviews.csv"
    csv.write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    store = ArtifactStore(home / "artifacts")
    try:
        classifier = store.commit_dir(
            tiny_classifier(work, seed=0),
            kind="model",
            name="tiny-clf",
            metadata={"format": "hf", "task": SEQUENCE_CLASSIFICATION, "labels": LABELS},
            lineage=Lineage(),
        )
        llama = store.commit_dir(
            tiny_llama_folder(work / "llama"),
            kind="model",
            name="tiny-llama",
            metadata={"format": "hf", "task": "causal_lm"},
            lineage=Lineage(),
        )
    finally:
        store.close()

    def settings(**addresses):
        return make_settings(home, [home, work], addresses=addresses, auth_token=TOKEN)

    threads = []
    try:
        for name in ("data", "training", "serving"):
            threads.append(ServiceThread(name, settings()).start())
        addresses = {t.name: t.address for t in threads}
        gateway = ServiceThread("gateway", settings(**addresses)).start()
        threads.append(gateway)
        face = HttpThread(settings(**addresses, gateway=gateway.address))
        face.start()
        with (
            Client(gateway.address, token=TOKEN) as gw,
            Client(addresses["serving"], token=TOKEN) as serving,
        ):
            gw.wait_ready()
            serving.wait_ready()
            for name, model in (("clf", classifier.id), ("llm", llama.id)):
                operation = serving.serving.DeployModel(
                    spb.DeployModelRequest(name=name, model_id=model)
                )
                serving.wait(operation, spb.DeployModelResponse, timeout=120)
            try:
                yield Stack(gw, face.url, str(csv), serving)
            finally:
                face.stop()
    finally:
        for thread in reversed(threads):
            thread.stop()


@pytest.fixture(scope="module")
def finished_runs(stack) -> list[str]:
    """Two data runs that differ in their split, both finished (with reports)."""
    ids = [
        stack.submit(data_pipeline("console-data", stack.csv, fraction)) for fraction in (0.75, 0.6)
    ]
    for run_id in ids:
        assert stack.finished(run_id).state == common_pb2.OPERATION_STATE_SUCCEEDED
    return ids


# --- the routes, over plain HTTP ------------------------------------------------------------


def frames(text: str) -> list[tuple[str, dict, str]]:
    """(event, data, id) of each server-sent event in ``text``."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields["event"], json.loads(fields["data"]), fields.get("id", "")))
    return found


def test_the_pages_are_public_and_the_api_wants_the_token(stack):
    page = httpx.get(stack.url + "/console", timeout=30)
    assert page.status_code == 200 and "console.js" in page.text
    script = httpx.get(stack.url + "/console/static/console.js", timeout=30)
    assert script.status_code == 200 and "fetch(" in script.text
    style = httpx.get(stack.url + "/console/static/console.css", timeout=30)
    assert style.status_code == 200
    for text in (page.text, script.text, style.text):  # nothing loaded from outside
        assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", text) in ([], [SVG_NAMESPACE])
    refused = httpx.get(stack.url + "/console/api/runs", timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["reason"] == "BAD_TOKEN"


def test_runs_list_filters_and_a_run_streams_its_events(stack, finished_runs):
    rows = stack.get("/console/api/runs").json()["runs"]
    ids = [row["id"] for row in rows]
    assert set(finished_runs) <= set(ids)
    row = next(r for r in rows if r["id"] == finished_runs[0])
    assert row["pipeline"] == "console-data" and row["state"] == "SUCCEEDED" and row["report"]
    assert row["steps"] == row["steps_finished"] == 4
    assert row["gates"] == [
        {
            "step": "clean",
            "expression": "dataset.num_rows >= 10",
            "passed": True,
            "message": row["gates"][0]["message"],
        }
    ]
    assert stack.get("/console/api/runs?state=failed").json()["runs"] == [
        r for r in rows if r["state"] == "FAILED"
    ]
    assert stack.get("/console/api/runs?q=nothing-like-it").json()["runs"] == []

    events = frames(stack.get(f"/console/api/runs/{finished_runs[0]}/events").text)
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == "run" and kinds[-2:] == ["run", "end"]
    assert events[-2][1]["state"] == "SUCCEEDED"
    sequences = [int(seq) for kind, _, seq in events if kind == "event"]
    assert sequences == sorted(sequences) and len(sequences) >= 8
    step_states = {
        (data["step"], data["state"]["state"])
        for kind, data, _ in events
        if kind == "event" and data.get("state") and data.get("step")
    }
    assert ("split", "OPERATION_STATE_SUCCEEDED") in step_states
    resumed = frames(
        stack.get(f"/console/api/runs/{finished_runs[0]}/events?after={sequences[-2]}").text
    )
    assert [int(seq) for kind, _, seq in resumed if kind == "event"] == sequences[-1:]

    detail = stack.get(f"/console/api/runs/{finished_runs[0]}").json()
    split = next(s for s in detail["steps_detail"] if s["name"] == "split")
    assert split["depends_on"] == ["clean"] and split["artifacts"]
    # The request as the gateway sent it: the reference to the clean step's dataset resolved.
    clean = next(s for s in detail["steps_detail"] if s["name"] == "clean")
    assert split["request_sent"] and split["request"]["train_fraction"] == 0.75
    assert split["request"]["dataset_id"] == clean["response"]["dataset"]["artifact"]["id"]
    assert split["artifacts"][0]["parents"]  # lineage: made from the cleaned dataset


def test_reports_and_compare_come_from_report_json(stack, finished_runs):
    first, second = finished_runs
    report = stack.get(f"/console/api/runs/{first}/report.json").json()
    assert report["run"] == f"operations/{first}"
    # What the data service recorded in the lineage of the datasets it made.
    made_with = report["config"]["step_versions"]["split"]
    assert made_with["pyarrow"] == metadata.version("pyarrow") and "python" in made_with
    html = stack.get(f"/console/api/runs/{first}/report.html")
    assert html.status_code == 200 and "<html" in html.text.lower()
    compared = stack.get(f"/console/api/compare?runs={first},{second}").json()
    assert [r["id"] for r in compared["runs"]] == [first, second]
    differing = {row["key"]: row["values"] for row in compared["config"] if row["differs"]}
    assert differing["steps[split].with.train_fraction"] == [0.75, 0.6]
    rows = {(r["step"], r["metric"]): r for r in compared["metrics"]}
    assert rows, compared["metrics"]
    for row in rows.values():
        assert len(row["values"]) == 2 and row["deltas"][0] in (0, None)


def test_the_runs_list_streams_as_runs_start_and_end(stack, finished_runs):
    seen: list[dict] = []  # each frame's runs: id -> state
    pages: list[list] = []  # each frame's rows, whole
    new = ""
    with httpx.stream(
        "GET", stack.url + "/console/api/runs/watch?q=console-watch", headers=AUTH, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                ((kind, data, _),) = frames(block)
                assert kind == "runs"
                pages.append(data["runs"])
                seen.append({row["id"]: row["state"] for row in data["runs"]})
                if len(seen) == 1:  # the first page, at once: no such run yet
                    assert seen[0] == {}
                    new = stack.submit(training_pipeline("console-watch", stack.csv, 10))
            if seen and seen[-1].get(new) == "SUCCEEDED":
                break
    states = [page.get(new) for page in seen[1:]]
    assert states[-1] == "SUCCEEDED" and "RUNNING" in states, seen
    assert all(a != b for a, b in zip(pages, pages[1:], strict=False))  # only changes are sent
    # A bad limit is refused naming it, before any stream starts.
    bad = stack.get("/console/api/runs/watch?limit=0")
    assert bad.status_code == 400 and "limit" in bad.text


def test_bad_requests_name_the_field(stack, finished_runs):
    bad = stack.get("/console/api/runs/not..an..id")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "run"
    missing = stack.get("/console/api/runs/ffffffffffffffff")
    assert missing.status_code == 404
    one = stack.get(f"/console/api/compare?runs={finished_runs[0]}")
    assert one.status_code == 400 and one.json()["error"]["field"] == "runs"


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(stack) -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chrome or not driver_path:
        pytest.skip("needs Debian's chromium and chromium-driver (`make test` installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        driver.get(stack.url + "/console")
        wait_for(driver, lambda d: d.find_element("id", "auth").is_displayed())
        driver.find_element("id", "auth-token").send_keys(TOKEN)
        driver.find_element("css selector", "#auth-form button").click()
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 120):
    """``condition``'s first truthy answer; an element the page redrew in between (stale)
    counts as not yet."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition)


def shot(driver, name: str) -> None:
    folder = SHOTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def step_state(driver, step: str) -> str:
    """The step's state in the run page's graph, read in one script call (the page redraws
    the graph as events come, so a found element may be gone by the next call)."""
    return driver.execute_script(
        "const g = document.querySelector(`#dag g.step[data-step='${arguments[0]}']`);"
        "return g ? g.getAttribute('data-state') : '';",
        step,
    )


def test_the_runs_list_in_a_browser(stack, browser, finished_runs):
    browser.get(stack.url + "/console#/runs")
    for run_id in finished_runs:
        wait_for(
            browser,
            lambda d, r=run_id: d.find_elements("css selector", f'tr.run-row[data-id="{r}"]'),
        )
    row = browser.find_element("css selector", f'tr.run-row[data-id="{finished_runs[0]}"]')
    assert "SUCCEEDED" in row.text and "dataset.num_rows >= 10" in row.text
    assert browser.find_element("id", "live").is_displayed()  # the list is streaming
    shot(browser, "runs")
    # The list is live: a run started while it is open appears, and ends, without a reload.
    browser.execute_script("window.notReloaded = true;")
    new = stack.submit(data_pipeline("console-live", stack.csv, 0.7))
    wait_for(
        browser,
        lambda d: d.find_elements("css selector", f'tr.run-row[data-id="{new}"]'),
        timeout=60,
    )
    wait_for(
        browser,
        lambda d: (
            d.execute_script(
                "const r = document.querySelector(`tr.run-row[data-id='${arguments[0]}']`);"
                "return r && r.getAttribute('data-state');",
                new,
            )
            == "SUCCEEDED"
        ),
        timeout=120,
    )
    assert browser.execute_script("return window.notReloaded === true;")


def test_following_a_running_pipeline_to_its_end(stack, browser):
    run_id = stack.submit(training_pipeline("console-train", stack.csv, max_steps=60))
    browser.get(f"{stack.url}/console#/runs/{run_id}")
    # Seen live: the train step running, then every step done, without reloading the page.
    wait_for(browser, lambda d: step_state(d, "train") == "RUNNING", timeout=180)
    shot(browser, "run-running")
    wait_for(
        browser,
        lambda d: d.find_element("tag name", "body").get_attribute("data-run-ended") == run_id,
        timeout=300,
    )
    states = {
        s: step_state(browser, s)
        for s in ("ingest", "clean", "profile", "split", "train", "evaluate")
    }
    assert set(states.values()) == {"SUCCEEDED"}, states
    assert "SUCCEEDED" in browser.find_element("css selector", "main h1").text
    wait_for(browser, lambda d: d.find_elements("id", "report-frame"))
    browser.find_element("css selector", '#dag g.step[data-step="train"]').click()
    panel = wait_for(
        browser, lambda d: d.find_element("css selector", '#step-panel[data-step="train"]')
    )
    assert "loss" in panel.text
    panel.find_element("css selector", ".step-request summary").click()
    assert "max_steps" in panel.find_element("css selector", ".step-request pre").text
    shot(browser, "run-finished")


def test_cancelling_a_run_from_its_page(stack, browser):
    run_id = stack.submit(training_pipeline("console-cancel", stack.csv, max_steps=20000))
    browser.get(f"{stack.url}/console#/runs/{run_id}")
    wait_for(browser, lambda d: step_state(d, "train") == "RUNNING", timeout=180)
    # The page redraws its head as events come: clicked in one script call, never stale.
    browser.execute_script("document.getElementById('cancel-btn').click()")
    wait_for(
        browser,
        lambda d: d.find_element("tag name", "body").get_attribute("data-run-ended") == run_id,
        timeout=180,
    )
    assert "CANCELLED" in browser.find_element("css selector", "main h1").text
    assert step_state(browser, "train") == "CANCELLED"
    assert step_state(browser, "evaluate") in ("SKIPPED", "CANCELLED")
    assert stack.run(run_id).state == common_pb2.OPERATION_STATE_CANCELLED
    assert browser.find_element("id", "retry-btn").is_enabled()
    shot(browser, "run-cancelled")


def test_comparing_two_runs(stack, browser, finished_runs):
    browser.get(stack.url + "/console#/runs")
    for run_id in finished_runs:
        box = wait_for(
            browser,
            lambda d, r=run_id: d.find_element("css selector", f'input.pick[data-id="{r}"]'),
        )
        box.click()
    browser.find_element("id", "compare-btn").click()
    table = wait_for(browser, lambda d: d.find_element("id", "compare-config"))
    assert "steps[split].with.train_fraction" in table.text and "0.6" in table.text
    metrics = browser.find_element("id", "compare-metrics")
    assert metrics.find_elements("css selector", "tbody tr")
    shot(browser, "compare")


def test_trying_deployments(stack, browser):
    browser.get(stack.url + "/console#/deployments")
    clf = wait_for(browser, lambda d: d.find_element("css selector", '.try[data-deployment="clf"]'))
    clf.find_element("css selector", ".try-input").send_keys("good food")
    clf.find_element("css selector", ".try-button").click()
    out = wait_for(
        browser,
        lambda d: d.find_element("css selector", '.try[data-deployment="clf"] .try-output.done'),
    )
    assert any(label in out.text for label in LABELS), out.text
    llm = browser.find_element("css selector", '.try[data-deployment="llm"]')
    llm.find_element("css selector", ".try-input").send_keys("w1 w2 w3")
    llm.find_element("css selector", ".try-button").click()
    streamed = wait_for(
        browser,
        lambda d: d.find_element("css selector", '.try[data-deployment="llm"] .try-output.done'),
    )
    assert streamed.get_attribute("data-finish") in ("stop", "length"), streamed.text
    shot(browser, "deployments")
