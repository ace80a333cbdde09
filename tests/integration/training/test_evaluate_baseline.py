"""EvaluateModel on a baseline's stored model (TrainBaseline's): scored on any dataset with the
metrics a fine-tuned model gets, without fitting it again, over gRPC and from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pyarrow as pa
import pytest

from forgeline.artifacts import Lineage
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.conftest import REPO
from tests.fixtures import reviews, spec


@dataclass
class Fitted:
    response: pb.TrainBaselineResponse
    held_out: str  # the dataset TrainBaseline scored it on


@pytest.fixture(scope="module")
def baseline(training, tclient) -> Fitted:
    """A tfidf_logreg model fitted on reviews numbered 0-5, scored on those numbered 6 and 7."""
    train = training.dataset(reviews(6), "eval-baseline-train")
    held_out = training.dataset(reviews(8).slice(60), "eval-baseline-held-out")
    op = tclient.training.TrainBaseline(
        pb.TrainBaselineRequest(
            train=common_pb2.DatasetInput(dataset_id=train.id),
            eval=common_pb2.DatasetInput(dataset_id=held_out.id),
            baseline=spec("tfidf_logreg", ngram_max=2, C=10.0),
            output_name="eval-baseline-tfidf",
        )
    )
    done = tclient.wait(op, pb.TrainBaselineResponse, timeout=120)
    assert done.model.id, "tfidf_logreg stores its model"
    return Fitted(done, held_out.id)


@pytest.fixture(scope="module")
def half_wrong(training) -> str:
    """Reviews numbered 8 and 9 (unseen): the first ten with their labels, the next ten with
    the other label, so a model that gets every text right scores exactly 0.5."""
    table = reviews(10).slice(80)
    labels = table.column("label").to_pylist()
    flipped = labels[:10] + [{"pos": "neg", "neg": "pos"}[v] for v in labels[10:]]
    table = table.set_column(1, "label", pa.array(flipped))
    return training.dataset(table, "eval-baseline-half-wrong").id


def evaluate(tclient, model_id: str, dataset_id: str) -> pb.Evaluation:
    op = tclient.training.EvaluateModel(
        pb.EvaluateModelRequest(
            model_id=model_id, dataset=common_pb2.DatasetInput(dataset_id=dataset_id)
        )
    )
    return tclient.wait(op, pb.EvaluateModelResponse, timeout=120).evaluation


def test_a_baseline_model_scores_as_it_did_when_fitted_and_on_another_set(
    tclient, baseline, half_wrong
):
    model = baseline.response.model.id
    again = evaluate(tclient, model, baseline.held_out)
    fitted = baseline.response.evaluation
    assert again.num_examples == fitted.num_examples == 20
    assert again.accuracy == pytest.approx(fitted.accuracy)
    assert again.f1_macro == pytest.approx(fitted.f1_macro)
    assert list(again.confusion_matrix.labels) == list(fitted.confusion_matrix.labels)
    assert list(again.confusion_matrix.counts) == list(fitted.confusion_matrix.counts)

    other = evaluate(tclient, model, half_wrong)
    assert other.num_examples == 20
    assert other.accuracy == pytest.approx(0.5)
    assert other.f1_macro == pytest.approx(0.5)
    assert list(other.confusion_matrix.labels) == ["neg", "pos"]
    assert list(other.confusion_matrix.counts) == [5, 5, 5, 5]


def test_a_baseline_model_is_checked_before_an_operation_starts(training, tclient, baseline):
    unknown_labels = training.dataset(
        reviews(1).set_column(1, "label", [["maybe"] * 10]), "eval-baseline-maybe"
    )
    with pytest.raises(InvalidArgument) as caught:
        tclient.training.EvaluateModel(
            pb.EvaluateModelRequest(
                model_id=baseline.response.model.id,
                dataset=common_pb2.DatasetInput(dataset_id=unknown_labels.id),
            )
        )
    assert "dataset" in caught.value.message and "maybe" in caught.value.message

    # A stored model of a baseline this service does not have: refused, naming the plugin.
    staged = training.home / "gone-baseline"
    staged.mkdir()
    (staged / "model.json").write_text("{}")
    gone = training.store.commit_dir(
        staged,
        kind="model",
        name="gone-baseline",
        metadata={
            "format": "gone_format",
            "task": "sequence_classification",
            "baseline": "gone_baseline",
            "labels": ["neg", "pos"],
        },
        lineage=Lineage(),
    )
    with pytest.raises(FailedPrecondition) as caught:
        tclient.training.EvaluateModel(
            pb.EvaluateModelRequest(
                model_id=gone.id, dataset=common_pb2.DatasetInput(dataset_id=baseline.held_out)
            )
        )
    assert caught.value.reason == "BASELINE_UNAVAILABLE"
    assert "model_id" in caught.value.message and "gone_baseline" in caught.value.message


def test_train_evaluate_scores_a_baseline_from_the_command_line(training, baseline, half_wrong):
    env = {
        **os.environ,
        "FORGELINE_ADDRESSES": json.dumps({"training": training.service.address}),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "forgeline", "train", "evaluate", "eval-baseline-tfidf",
         half_wrong],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "20 examples  accuracy 0.5000  macro F1 0.5000" in done.stdout
    assert "neg" in done.stdout and "pos" in done.stdout  # the confusion matrix
