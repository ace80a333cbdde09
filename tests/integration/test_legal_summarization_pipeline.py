"""The shipped legal-summarization pipeline (examples/pipelines/legal-summarization.yaml), the
same file with small budgets set the way a user sets them (`--set`), run through a real gateway
over real data and training services: a handful of IN-Abs judgments, and the tiny llama of
tests/tiny_llm.py imported where the real run imports SmolLM2. Every step runs; the baselines,
the zero-shot model and the LoRA-fine-tuned one each come back with ROUGE; the fine-tuning read
its judgments through the long_inputs plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from forgeline.client import Client
from forgeline.v1 import common_pb2
from forgeline.v1 import pipeline_service_pb2 as pb
from tests.conftest import REPO, ServiceThread, make_settings, shared_data
from tests.waiting import wait_done

pytestmark = pytest.mark.slow

PIPELINE = REPO / "examples" / "pipelines" / "legal-summarization.yaml"
TRAIN_DOCS, TEST_DOCS = 8, 4
ROUGE = ("rouge_rouge1", "rouge_rouge2", "rouge_rougeL")


def first_lines(source: Path, target: Path, n: int) -> Path:
    """The first ``n`` judgments of an IN-Abs file, as a file of their own."""
    with source.open(encoding="utf-8") as lines:
        target.write_text("".join(next(lines) for _ in range(n)), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory, ray_local) -> Iterator[tuple[Client, Path]]:
    """Data, training and gateway services over one home, and a data root holding the
    judgments and the tiny llama folder."""
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
    addresses = {"data": data.address, "training": training.address}
    gateway = ServiceThread("gateway", make_settings(home, [root], addresses=addresses)).start()
    try:
        with Client(gateway.address) as client:
            client.wait_ready()
            yield client, root
    finally:
        gateway.stop()
        training.stop()
        data.stop()


def overrides(root: Path) -> list[str]:
    """What the real run gets from the command line, plus budgets a tiny model and a handful of
    judgments need (its positions are 128: 48 prompt tokens, 8 new ones)."""
    generation = [
        "generation.input_token_budget=48",
        "generation.decoding.max_new_tokens=8",
        "generation.max_examples=2",
        "batch_size=2",
    ]
    return [
        f"ingest_train.with.source={root / 'in_abs_train.jsonl'}",
        f"ingest_test.with.source={root / 'in_abs_test.jsonl'}",
        f"import.with.source_path={root / 'tiny-llama'}",
        f'clean_train.gates=["dataset.num_rows >= {TRAIN_DOCS}"]',
        f'prompts_test.gates=["dataset.num_rows == {TEST_DOCS}"]',
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
    ]


def test_the_legal_summarization_pipeline_runs_end_to_end(stack):
    client, root = stack
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
        "sample",
        "lead_k",
        "textrank",
        "import",
        "zero_shot",
        "sft",
        "fine_tuned",
    }
    assert all(s.state == pb.STEP_STATE_SUCCEEDED and not s.cached for s in run.steps)
    response = {name: MessageToDict(s.response) for name, s in steps.items()}
    # The test judgments are kept as given; the instruction is in front of each.
    assert response["prompts_test"]["dataset"]["num_rows"] == str(TEST_DOCS)

    # The extractive baselines share words with the official summaries: ROUGE above zero.
    for name in ("lead_k", "textrank"):
        metrics = response[name]["evaluation"]["metrics"]
        assert set(ROUGE) <= set(metrics) and metrics["rouge_rougeL"] > 0.1, (name, metrics)

    # Zero-shot and fine-tuned: generated on the same seeded 2 of the 4 test judgments, each
    # read head and tail within the 48-token budget, scored with the same ROUGE.
    for name in ("zero_shot", "fine_tuned"):
        evaluation = response[name]["evaluation"]
        assert set(ROUGE) <= set(evaluation["metrics"]), (name, evaluation)
        settings = evaluation["generation_settings"]
        assert settings["rows"] == 2 and settings["input_token_budget"] <= 48
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
