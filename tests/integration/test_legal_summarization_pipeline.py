"""The shipped legal-summarization pipeline (examples/pipelines/legal-summarization.yaml), the
same file with small budgets set the way a user sets them (`--set`), run through a real gateway
over real data, training and serving services: a handful of IN-Abs judgments, and the tiny llama
of tests/tiny_llm.py imported where the real run imports SmolLM2. Every step runs; the baselines,
the zero-shot model and the LoRA-fine-tuned one each come back with ROUGE on the same review
judgments; the fine-tuning read its judgments through the long_inputs plugin; the blind review
sheet sets the four systems side by side; the fine-tuned adapter is deployed and generates."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from forgeline.artifacts import ArtifactStore
from forgeline.client import Client
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as pb
from forgeline.v1 import serving_service_pb2 as spb
from tests.conftest import REPO, ServiceThread, make_settings, shared_data
from tests.waiting import wait_done

pytestmark = pytest.mark.slow

PIPELINE = REPO / "examples" / "pipelines" / "legal-summarization.yaml"
TRAIN_DOCS, TEST_DOCS = 8, 4
# Of the first 4 test judgments (ids 78, 232, 266, 314), the review_set step's list keeps 2.
REVIEW_DOCS = 2
SYSTEMS = {"lead_k", "textrank", "smollm2-zero-shot", "smollm2-lora"}
ROUGE = ("rouge_rouge1", "rouge_rouge2", "rouge_rougeL")


def first_lines(source: Path, target: Path, n: int) -> Path:
    """The first ``n`` judgments of an IN-Abs file, as a file of their own."""
    with source.open(encoding="utf-8") as lines:
        target.write_text("".join(next(lines) for _ in range(n)), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory, ray_local) -> Iterator[tuple[Client, Client, Path, Path]]:
    """Data, training, serving and gateway services over one home (returned with its serving
    client, data root and home), the data root holding the judgments and the tiny llama
    folder."""
    pytest.importorskip("torch")
    from tests.tiny_llm import tiny_llama_folder

    train = shared_data("summarization/in_abs_train.jsonl")
    test = shared_data("summarization/in_abs_test.jsonl")
    root = tmp_path_factory.mktemp("legal-data")
    first_lines(train, root / "in_abs_train.jsonl", TRAIN_DOCS)
    first_lines(test, root / "in_abs_test.jsonl", TEST_DOCS)
    tiny_llama_folder(root / "tiny-llama")
    home = tmp_path_factory.mktemp("legal-home")
    data = ServiceThread("data", make_settings(home, [root])).start()
    training = ServiceThread("training", make_settings(home, [root])).start()
    serving = ServiceThread("serving", make_settings(home, [root])).start()
    addresses = {"data": data.address, "training": training.address, "serving": serving.address}
    gateway = ServiceThread("gateway", make_settings(home, [root], addresses=addresses)).start()
    try:
        with Client(gateway.address) as client, Client(serving.address) as served:
            client.wait_ready()
            served.wait_ready()
            yield client, served, root, home
    finally:
        gateway.stop()
        serving.stop()
        training.stop()
        data.stop()


def overrides(root: Path) -> list[str]:
    """What the real run gets from the command line, plus budgets a tiny model and a handful of
    judgments need (its positions are 128: 48 prompt tokens, 8 new ones)."""
    generation = [
        "generation.input_token_budget=48",
        "generation.decoding.max_new_tokens=8",
        "batch_size=2",
    ]
    return [
        f"ingest_train.with.source={root / 'in_abs_train.jsonl'}",
        f"ingest_test.with.source={root / 'in_abs_test.jsonl'}",
        f"import.with.source_path={root / 'tiny-llama'}",
        f'clean_train.gates=["dataset.num_rows >= {TRAIN_DOCS}"]',
        f'prompts_test.gates=["dataset.num_rows == {TEST_DOCS}"]',
        f'review_set.gates=["dataset.num_rows == {REVIEW_DOCS}"]',
        "sample.with.train_fraction=0.5",
        "sample.with.validation_fraction=0.25",
        "sample.with.test_fraction=0.25",
        "sft.with.input_token_budget=48",
        "sft.with.hyper_parameters.max_sequence_length=96",
        "sft.with.hyper_parameters.batch_size_per_worker=2",
        "sft.with.hyper_parameters.gradient_accumulation_steps=1",
        "sft.with.scaling.cpus_per_worker=1",
        *(f"zero_shot.with.{o}" for o in generation),
        *(f"fine_tuned.with.{o}" for o in generation),
        "deploy.with.max_new_tokens=8",
    ]


def test_the_legal_summarization_pipeline_runs_end_to_end(stack):
    client, served, root, home = stack
    op = client.pipelines.SubmitPipeline(
        pb.SubmitPipelineRequest(
            pipeline_yaml=PIPELINE.read_text(encoding="utf-8"), overrides=overrides(root)
        )
    )
    run = wait_done(client, op, pb.SubmitPipelineResponse).run
    steps = {s.name: s for s in run.steps}
    assert run.state == common_pb2.OPERATION_STATE_SUCCEEDED, [
        (s.name, s.message) for s in run.steps
    ]
    assert set(steps) == {
        "ingest_train",
        "ingest_test",
        "clean_train",
        "prompts_test",
        "review_set",
        "sample",
        "lead_k",
        "textrank",
        "import",
        "zero_shot",
        "sft",
        "fine_tuned",
        "review",
        "deploy",
    }
    assert all(s.state == pb.STEP_STATE_SUCCEEDED and not s.cached for s in run.steps)
    response = {name: MessageToDict(s.response) for name, s in steps.items()}
    # The test judgments are kept as given; the instruction is in front of each.
    assert response["prompts_test"]["dataset"]["num_rows"] == str(TEST_DOCS)
    # Every system is scored on the judgments the review_set step lists by id.
    assert response["review_set"]["dataset"]["num_rows"] == str(REVIEW_DOCS)

    # The extractive baselines share words with the official summaries: ROUGE above zero, on
    # every review judgment.
    for name in ("lead_k", "textrank"):
        evaluation = response[name]["evaluation"]
        metrics = evaluation["metrics"]
        assert set(ROUGE) <= set(metrics) and metrics["rouge_rougeL"] > 0.1, (name, metrics)
        assert evaluation["num_examples"] == str(REVIEW_DOCS), (name, evaluation)

    # Zero-shot and fine-tuned: generated on the same review judgments, each read head and tail
    # within the 48-token budget, scored with the same ROUGE.
    for name in ("zero_shot", "fine_tuned"):
        evaluation = response[name]["evaluation"]
        assert set(ROUGE) <= set(evaluation["metrics"]), (name, evaluation)
        settings = evaluation["generation_settings"]
        assert settings["rows"] == REVIEW_DOCS and settings["input_token_budget"] <= 48
        assert settings["long_inputs"]["name"] == "truncate"
        assert settings["long_inputs"]["config"]["keep"] == "head_tail"
        assert settings["metrics"][0]["config"] == {"tokenize": "auto", "stemming": True}

    # The fine-tuned model is a LoRA adapter over the imported model, trained on every sampled
    # judgment, each shortened by the plugin (all are far longer than 48 tokens).
    sft = response["sft"]
    assert sft["model"]["kind"] == "ARTIFACT_KIND_ADAPTER"
    assert sft["metrics"]["rows"] == sft["metrics"]["shortened_rows"] == TRAIN_DOCS // 2
    assert int(sft["trainable_parameters"]) < int(sft["total_parameters"])
    assert "sft" in steps["fine_tuned"].depends_on

    # The blind review sheet: every review judgment, once per system, the key naming the four.
    review = steps["review"]
    assert {"lead_k", "textrank", "zero_shot", "fine_tuned"} <= set(review.depends_on)
    sheet = response["review"]
    assert sheet["num_documents"] == REVIEW_DOCS and sheet["rows"] == REVIEW_DOCS * len(SYSTEMS)
    store = ArtifactStore(home / "artifacts")
    try:
        folder = store.verify(store.get(sheet["sheet"]["id"]))
        with (folder / "sheet.csv").open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    finally:
        store.close()
    assert len(rows) == REVIEW_DOCS * len(SYSTEMS) and "system" not in rows[0]
    assert set(key["systems"]) == SYSTEMS
    assert all(set(letters.values()) == SYSTEMS for letters in key["documents"].values())

    # The fine-tuned adapter is served on its base and answers.
    deployment = response["deploy"]["deployment"]
    assert deployment["name"] == "legal-summarizer"
    assert deployment["adapters"] == {"default": response["sft"]["model"]["id"]}
    listed = served.serving.ListDeployments(spb.ListDeploymentsRequest()).deployments
    assert "legal-summarizer" in {d.name for d in listed}
    answer = served.serving.Generate(
        spb.GenerateRequest(
            deployment="legal-summarizer",
            messages=[spb.ChatTurn(role="user", content="Summarize this judgment. w1 w2 w3")],
        )
    )
    assert answer.usage.completion_tokens > 0 and answer.finish_reason in ("stop", "length")
