"""The Chinese check: CSL abstracts -> their paper titles (the shared data's
summarization/csl_title_zh.tsv) through the real training service, scored with ROUGE per
character. rouge-score's own tokenizer deletes every CJK character; a run of Chinese characters
read as one word matches nothing short of the whole title; per character, the lead of an abstract
shares a good part of its title. No Chinese pretrained generative model is installed here, so
the trained model is a tiny T5 from config: the test checks the path (training, generation, the
per-character scoring it reports), not the quality of its titles."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator

import pyarrow as pa
import pytest

from forgeline.client import Client
from forgeline.convert import from_struct, struct
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.conftest import shared_data
from tests.fixtures import Workspace, ready_client, spec, started
from tests.waiting import wait_done

ROWS = 40
TINY_T5 = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}


def csl_rows(n: int) -> pa.Table:
    """The first ``n`` (abstract, title) pairs: ``to title<TAB>abstract<TAB>title`` lines."""
    path = shared_data("summarization/csl_title_zh.tsv")
    with path.open(encoding="utf-8", newline="") as lines:
        rows = [row for _, row in zip(range(n), csv.reader(lines, delimiter="\t"), strict=False)]
    assert all(len(row) == 3 and row[0] == "to title" for row in rows)
    return pa.table({"text": [r[1] for r in rows], "target": [r[2] for r in rows]})


@pytest.fixture(scope="module")
def baselines(tmp_path_factory) -> Iterator[tuple[Workspace, Client]]:
    """A training service of its own: TrainBaseline needs no Ray."""
    for workspace in started(tmp_path_factory, "training"):
        for client in ready_client(workspace.service.address):
            yield workspace, client


def lead_rouge(client: Client, dataset_id: str, tokenize: str) -> dict[str, float]:
    op = client.training.TrainBaseline(
        pb.TrainBaselineRequest(
            train=common_pb2.DatasetInput(dataset_id=dataset_id),
            eval=common_pb2.DatasetInput(dataset_id=dataset_id),
            baseline=spec("lead_k", sentences=1, max_words=30),
            metrics=[spec("rouge", tokenize=tokenize)],
        )
    )
    return dict(wait_done(client, op, pb.TrainBaselineResponse).evaluation.metrics)


def test_lead_titles_are_scored_per_character_not_per_run_of_characters(baselines):
    workspace, client = baselines
    dataset = workspace.dataset(csl_rows(ROWS), "csl-titles", label="target")
    characters = lead_rouge(client, dataset.id, "characters")
    auto = lead_rouge(client, dataset.id, "auto")
    words = lead_rouge(client, dataset.id, "words")
    # The first 30 characters of an abstract share about a third of its title's characters in
    # order; as runs of characters, the lead and the title share almost nothing (a Latin
    # acronym at most).
    assert characters["rouge_rougeL"] > 0.1
    assert auto["rouge_rougeL"] == pytest.approx(characters["rouge_rougeL"], abs=0.05)
    assert words["rouge_rougeL"] < 0.05 < characters["rouge_rougeL"] / 2


@pytest.mark.slow
def test_a_seq2seq_model_trains_on_abstracts_and_is_scored_per_character(training, tclient):
    dataset = training.dataset(csl_rows(ROWS), "csl-seq2seq", label="target")
    trained = wait_done(
        tclient,
        tclient.training.TrainModel(
            pb.TrainModelRequest(
                train=common_pb2.DatasetInput(dataset_id=dataset.id),
                model=pb.ModelSource(
                    from_config=pb.ModelFromConfig(
                        model_type="t5", config=struct(TINY_T5), vocab_size=600
                    )
                ),
                task=pb.TASK_SEQ2SEQ,
                finetune=spec("full"),
                long_inputs=spec("truncate"),
                hyper_parameters=common_pb2.HyperParameters(
                    learning_rate=3e-3,
                    batch_size_per_worker=8,
                    max_steps=4,
                    seed=5,
                    max_sequence_length=64,
                ),  # fmt: skip
            )
        ),
        pb.TrainModelResponse,
    )
    # Abstracts average ~200 characters: most are over the 64-token source, cut by the plugin.
    assert trained.steps == 4 and trained.metrics["rows"] == ROWS
    assert 0 < trained.metrics["shortened_rows"] <= ROWS
    evaluated = wait_done(
        tclient,
        tclient.training.EvaluateModel(
            pb.EvaluateModelRequest(
                model_id=trained.model.id,
                dataset=common_pb2.DatasetInput(dataset_id=dataset.id),
                generation=pb.GenerationEvaluation(
                    decoding=pb.DecodingOptions(max_new_tokens=12),
                    metrics=[spec("rouge", tokenize="characters")],
                    max_examples=8,
                    seed=1,
                ),
            )
        ),
        pb.EvaluateModelResponse,
    ).evaluation
    settings = from_struct(evaluated.generation_settings)
    assert settings["metrics"][0]["name"] == "rouge"
    assert settings["metrics"][0]["config"]["tokenize"] == "characters"
    assert evaluated.num_examples == 8
    for key in ("rouge_rouge1", "rouge_rouge2", "rouge_rougeL"):
        assert 0.0 <= evaluated.metrics[key] <= 1.0 and math.isfinite(evaluated.metrics[key])
    titles = set(csl_rows(ROWS).column("target").to_pylist())
    assert evaluated.samples and all(s.reference in titles for s in evaluated.samples)
