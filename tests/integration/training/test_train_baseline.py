"""TrainBaseline over gRPC: a TF-IDF + logistic-regression baseline fitted and scored in the
training service process, its model stored without pickle, and bad requests refused up front."""

from __future__ import annotations

import pytest
from google.longrunning import operations_pb2

from forgeline.errors import FailedPrecondition, InvalidArgument, NotFound
from forgeline.plugins.baselines.tfidf import load
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.fixtures import BAD, GOOD, reviews, spec


def operation_count(client) -> int:
    listed = client.operations.ListOperations(operations_pb2.ListOperationsRequest(page_size=1000))
    return len(listed.operations)


def test_tfidf_baseline_is_fitted_scored_and_stored(training, tclient):
    train = training.dataset(reviews(6), "baseline-train")
    # Rows 60.. are the reviews numbered 6 and 7: texts the baseline never saw.
    held_out = training.dataset(reviews(8).slice(60), "baseline-eval")
    request = pb.TrainBaselineRequest(
        train=common_pb2.DatasetInput(dataset_id=train.id),
        eval=common_pb2.DatasetInput(dataset_id=held_out.id),
        baseline=spec("tfidf_logreg", ngram_max=2, C=10.0),
        output_name="reviews-tfidf",
        request_id="baseline-1",
    )
    op = tclient.training.TrainBaseline(request)
    done = tclient.wait(op, pb.TrainBaselineResponse, timeout=120)

    evaluation = done.evaluation
    assert evaluation.num_examples == 20
    assert evaluation.accuracy == pytest.approx(1.0)
    assert evaluation.f1_macro == pytest.approx(1.0)
    assert list(evaluation.confusion_matrix.labels) == ["neg", "pos"]
    assert sum(evaluation.confusion_matrix.counts) == evaluation.num_examples
    assert list(evaluation.confusion_matrix.counts) == [10, 0, 0, 10]
    assert done.seconds > 0

    assert done.model.kind == common_pb2.ARTIFACT_KIND_MODEL
    assert done.model.metadata["format"] == "tfidf_logreg"
    assert set(done.model.lineage.parent_ids) == {train.id, held_out.id}
    assert done.model.lineage.producer == "forgeline.v1.TrainingService/TrainBaseline"
    record = training.store.get(done.model.id)
    assert record.name == "reviews-tfidf"
    assert load(record.path).predict([f"{GOOD[1]} 9", f"{BAD[1]} 9"]) == ["pos", "neg"]

    events = list(tclient.stream_events(op.name, follow=False))
    points = {p.name: p.value for e in events if e.HasField("metrics") for p in e.metrics.points}
    assert points["eval_accuracy"] == pytest.approx(evaluation.accuracy)
    assert points["eval_f1_macro"] == pytest.approx(evaluation.f1_macro)
    assert any(e.HasField("progress") for e in events)

    # The same request id returns the same operation (AIP-155).
    assert tclient.training.TrainBaseline(request).name == op.name

    # EvaluateModel and Predict serve Hugging Face models; they refuse a baseline by name.
    with pytest.raises(FailedPrecondition) as caught:
        tclient.training.Predict(pb.PredictRequest(model_id=done.model.id, texts=["x"]))
    assert "tfidf_logreg" in caught.value.message


def test_bad_baseline_requests_are_refused_before_any_operation(training, tclient):
    train = training.dataset(reviews(2), "baseline-bad-train")
    held_out = training.dataset(reviews(1), "baseline-bad-eval")
    other_labels = training.dataset(
        reviews(1).set_column(1, "label", [["maybe"] * 10]), "baseline-other-labels"
    )
    before = operation_count(tclient)

    def refused(error_type, field, **overrides):
        fields = {
            "train": common_pb2.DatasetInput(dataset_id=train.id),
            "eval": common_pb2.DatasetInput(dataset_id=held_out.id),
            "baseline": spec("tfidf_logreg"),
        }
        fields.update(overrides)
        with pytest.raises(error_type) as caught:
            tclient.training.TrainBaseline(pb.TrainBaselineRequest(**fields))
        assert field in caught.value.message, caught.value.message
        return caught.value

    error = refused(InvalidArgument, "baseline.name", baseline=spec("svm_rbf"))
    assert "tfidf_logreg" in error.message  # the known baselines are listed
    refused(
        InvalidArgument,
        "baseline.config.ngram_max",
        baseline=spec("tfidf_logreg", ngram_min=3, ngram_max=1),
    )
    refused(InvalidArgument, "baseline.config.C", baseline=spec("tfidf_logreg", C=0))
    refused(NotFound, "train.dataset_id", train=common_pb2.DatasetInput(dataset_id="nope"))
    refused(InvalidArgument, "eval.dataset_id", eval=common_pb2.DatasetInput())
    refused(
        InvalidArgument,
        "train.text_column",
        train=common_pb2.DatasetInput(dataset_id=train.id, text_column="body"),
    )
    refused(
        InvalidArgument,
        "eval.label_column",
        eval=common_pb2.DatasetInput(dataset_id=held_out.id, label_column="stars"),
    )
    refused(
        InvalidArgument,
        "eval.label_column",
        eval=common_pb2.DatasetInput(dataset_id=other_labels.id),
    )
    refused(InvalidArgument, "output_name", output_name="../escape")
    assert operation_count(tclient) == before  # nothing was accepted, nothing started
