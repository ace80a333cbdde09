"""TuningService over gRPC on a real local Ray: an Optuna + ASHA search on a tiny model, a
multi-objective search, cancel, and every refusal before a trial starts."""

from __future__ import annotations

import math

import pytest
from google.longrunning import operations_pb2
from google.protobuf import struct_pb2

from forgeline.client import Client
from forgeline.errors import FailedPrecondition, ForgelineError, InvalidArgument
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as tpb
from forgeline.v1 import tuning_service_pb2 as pb
from tests.fixtures import reviews, spec, tiny_bert
from tests.waiting import wait_done

MAXIMIZE, MINIMIZE = pb.OBJECTIVE_DIRECTION_MAXIMIZE, pb.OBJECTIVE_DIRECTION_MINIMIZE


def training(train_id: str, eval_id: str = "", epochs: int = 4, **hyper) -> tpb.TrainModelRequest:
    return tpb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=train_id),
        eval=common_pb2.DatasetInput(dataset_id=eval_id) if eval_id else None,
        model=tiny_bert(),
        task=tpb.TASK_SEQUENCE_CLASSIFICATION,
        finetune=spec("lora", target_modules=["query", "key", "value", "dense"]),
        hyper_parameters=common_pb2.HyperParameters(
            learning_rate=hyper.pop("learning_rate", 5e-3),
            batch_size_per_worker=8,
            epochs=epochs,
            seed=3,
            **hyper,
        ),
    )


def loguniform(name: str, low: float, high: float) -> pb.SearchParameter:
    return pb.SearchParameter(name=name, loguniform=pb.FloatRange(low=low, high=high))


def choice(name: str, *values) -> pb.SearchParameter:
    return pb.SearchParameter(
        name=name,
        choice=pb.ChoiceValues(values=[struct_pb2.Value(number_value=v) for v in values]),
    )


def progress_messages(client: Client, operation: str) -> list[str]:
    return [
        e.progress.message
        for e in client.stream_events(operation, follow=False)
        if e.HasField("progress")
    ]


@pytest.fixture(scope="module")
def data(tuning):
    return tuning.dataset(reviews(8), "tune-train"), tuning.dataset(reviews(2), "tune-eval")


@pytest.mark.slow
def test_optuna_with_asha_prunes_and_returns_the_best_trial_and_its_model(tuning, tuner, data):
    train, held_out = data
    op = tuner.tuning.TuneModel(
        pb.TuneModelRequest(
            training=training(train.id, held_out.id),
            search_space=[
                loguniform("hyper_parameters.learning_rate", 1e-4, 3e-2),
                choice("finetune.config.r", 2, 8),
            ],
            objectives=[pb.Objective(metric="eval_loss", direction=MINIMIZE)],
            num_trials=6,
            max_concurrent_trials=2,
            searcher=spec("optuna", n_startup_trials=3),
            scheduler=spec("asha", grace_period=1, reduction_factor=2),
            seed=7,
            output_name="tuned-reviews",
        )
    )
    done = wait_done(tuner, op, pb.TuneModelResponse)
    assert len(done.trials) == 6
    assert [t.number for t in done.trials] == [1, 2, 3, 4, 5, 6]
    states = [t.state for t in done.trials]
    assert states.count(pb.TRIAL_STATE_STOPPED_EARLY) >= 1, states
    assert done.stopped_early_trials == states.count(pb.TRIAL_STATE_STOPPED_EARLY)
    assert done.completed_trials == states.count(pb.TRIAL_STATE_COMPLETED) >= 1
    for t in done.trials:
        lr = t.parameters["hyper_parameters.learning_rate"]
        assert 1e-4 <= lr <= 3e-2 and t.parameters["finetune.config.r"] in (2, 8)
        assert len(t.objective_history) == t.iterations >= 1
        assert t.objective_history[-1] == pytest.approx(t.metrics["eval_loss"])
        if t.state == pb.TRIAL_STATE_STOPPED_EARLY:
            assert t.iterations < 4
        else:
            assert t.iterations == 4
    completed = [t for t in done.trials if t.state == pb.TRIAL_STATE_COMPLETED]
    best = min(completed, key=lambda t: t.metrics["eval_loss"])
    assert done.best_trial.id == best.id
    assert done.best_metrics["eval_loss"] == best.metrics["eval_loss"]
    assert dict(done.best_parameters) == dict(best.parameters)
    # The best trial's own adapter, with lineage to the search and its winning parameters.
    assert done.model.kind == common_pb2.ARTIFACT_KIND_ADAPTER
    lineage = done.model.lineage
    assert lineage.producer == "forgeline.v1.TuningService/TuneModel"
    assert lineage.operation == op.name
    assert train.id in lineage.parent_ids and held_out.id in lineage.parent_ids
    chosen = lineage.config["best_parameters"]
    assert (
        chosen["hyper_parameters.learning_rate"]
        == best.parameters["hyper_parameters.learning_rate"]
    )
    assert lineage.config["resolved"]["learning_rate"] == pytest.approx(
        best.parameters["hyper_parameters.learning_rate"]
    )
    assert done.model.metadata["evaluation"]["loss"] == pytest.approx(best.metrics["eval_loss"])
    assert set(done.parameter_importances) <= {
        "hyper_parameters.learning_rate",
        "finetune.config.r",
    }
    if len(completed) >= 2:
        assert math.isclose(sum(done.parameter_importances.values()), 1.0, rel_tol=1e-6)
    # Events: every trial's start, its per-epoch metrics, early stops and results.
    messages = progress_messages(tuner, op.name)
    assert sum("started:" in m for m in messages) == 6
    assert sum("stopped early after" in m for m in messages) == done.stopped_early_trials
    points = [
        p
        for e in tuner.stream_events(op.name, follow=False)
        if e.HasField("metrics")
        for p in e.metrics.points
    ]
    curves = {(p.name, p.step) for p in points if p.name.endswith("/eval_loss")}
    assert {f"trial_{t.number}/eval_loss" for t in done.trials} == {n for n, _ in curves}
    finals = {p.step: p.value for p in points if p.name == "eval_loss"}
    assert finals == {t.number: t.metrics["eval_loss"] for t in completed}


@pytest.mark.slow
def test_a_multi_objective_search_reports_its_pareto_front(tuning, tuner, data):
    train, held_out = data
    op = tuner.tuning.TuneModel(
        pb.TuneModelRequest(
            training=training(train.id, held_out.id, epochs=2),
            search_space=[choice("finetune.config.r", 1, 4, 16)],
            objectives=[
                pb.Objective(metric="eval_accuracy", direction=MAXIMIZE),
                pb.Objective(metric="trainable_parameters"),  # minimized by its name
            ],
            num_trials=3,
            searcher=spec("optuna", n_startup_trials=3),
            scheduler=spec("fifo"),
            seed=1,
        )
    )
    done = wait_done(tuner, op, pb.TuneModelResponse)
    completed = [t for t in done.trials if t.state == pb.TRIAL_STATE_COMPLETED]
    assert len(completed) == 3
    front = {t.id for t in completed if t.pareto_optimal}
    assert front and front == set(done.pareto_front)

    def dominates(a, b) -> bool:
        better = (
            a.metrics["eval_accuracy"] >= b.metrics["eval_accuracy"]
            and a.metrics["trainable_parameters"] <= b.metrics["trainable_parameters"]
        )
        strictly = (
            a.metrics["eval_accuracy"] > b.metrics["eval_accuracy"]
            or a.metrics["trainable_parameters"] < b.metrics["trainable_parameters"]
        )
        return better and strictly

    for t in completed:
        dominated = any(dominates(o, t) for o in completed if o.id != t.id)
        assert dominated == (t.id not in front), (t.id, front)
    # The smallest adapter is never dominated on trainable parameters by another of its size.
    smallest = min(completed, key=lambda t: t.metrics["trainable_parameters"])
    assert smallest.id in front or any(
        o.metrics["trainable_parameters"] == smallest.metrics["trainable_parameters"]
        for o in completed
        if o.id in front
    )


@pytest.mark.slow
def test_cancel_stops_every_trial(tuning, tuner, data):
    train, held_out = data
    op = tuner.tuning.TuneModel(
        pb.TuneModelRequest(
            training=training(train.id, held_out.id, epochs=30),
            search_space=[loguniform("hyper_parameters.learning_rate", 1e-4, 1e-2)],
            num_trials=8,
            max_concurrent_trials=2,
            scheduler=spec("fifo"),
        )
    )
    for event in tuner.stream_events(op.name):
        if event.HasField("metrics"):  # a trial reported an epoch
            break
    tuner.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    with pytest.raises(ForgelineError) as err:
        tuner.wait(op, pb.TuneModelResponse, timeout=120)
    assert err.value.reason == "OPERATION_CANCELLED"
    messages = progress_messages(tuner, op.name)
    assert sum("started:" in m for m in messages) <= 3  # nothing started after the cancel


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        (
            {"search_space": [loguniform("hyper_parameters.learning_rate", 1e-2, 1e-4)]},
            "search_space[0].loguniform",
            InvalidArgument,
        ),
        (
            {"search_space": [loguniform("hyper_parameters.learning_rate", 1e-3, 1e-3)]},
            "search_space[0].loguniform",
            InvalidArgument,
        ),
        (
            {"search_space": [loguniform("hyper_parameters.momentum", 0.8, 0.99)]},
            "search_space[0].name",
            InvalidArgument,
        ),
        (
            {"search_space": [choice("finetune.config.rank", 4, 8)]},
            "search_space[0].name",
            InvalidArgument,
        ),
        (
            {"search_space": [choice("hyper_parameters.batch_size_per_worker", 8, 5000)]},
            "search_space[0]",
            InvalidArgument,
        ),
        (
            {
                "search_space": [
                    pb.SearchParameter(
                        name="hyper_parameters.epochs", uniform=pb.FloatRange(low=1, high=3)
                    )
                ]
            },
            "search_space[0]",
            InvalidArgument,
        ),
        ({"search_space": []}, "search_space", InvalidArgument),
        (
            {"objectives": [pb.Objective(metric="eval_bleu")]},
            "objectives[0].metric",
            InvalidArgument,
        ),
        ({"max_concurrent_trials": 99}, "max_concurrent_trials", FailedPrecondition),
        (
            {"resources_per_trial": pb.TrialResources(cpus=64)},
            "resources_per_trial",
            FailedPrecondition,
        ),
        (
            {
                "objectives": [pb.Objective(metric="eval_accuracy"), pb.Objective(metric="loss")],
                "searcher": spec("random"),
            },
            "objectives",
            InvalidArgument,
        ),
        ({"searcher": spec("grid"), "num_trials": 5}, "num_trials", InvalidArgument),
        (
            {"scheduler": spec("asha", grace_period=4)},
            "scheduler.config.grace_period",
            InvalidArgument,
        ),
        ({"searcher": spec("bayesopt")}, "searcher.name", InvalidArgument),
        ({"workers": 2}, "training.scaling.num_workers", InvalidArgument),
    ],
)
def test_bad_requests_are_refused_before_any_trial(tuning, tuner, data, change, field, error):
    train, held_out = data
    request = pb.TuneModelRequest(
        training=training(train.id, held_out.id),
        search_space=[loguniform("hyper_parameters.learning_rate", 1e-4, 1e-2)],
        num_trials=4,
    )
    for key, value in change.items():
        if key == "search_space":
            del request.search_space[:]
            request.search_space.extend(value)
        elif key == "objectives":
            request.objectives.extend(value)
        elif key == "workers":
            request.training.scaling.num_workers = value
        elif isinstance(value, common_pb2.PluginSpec | pb.TrialResources):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    with pytest.raises(error) as err:
        tuner.tuning.TuneModel(request)
    assert field in str(err.value), str(err.value)


def test_an_objective_needing_an_eval_dataset_is_refused_without_one(tuning, tuner, data):
    train, _ = data
    with pytest.raises(InvalidArgument, match=r"objectives\[0\].metric.*need training.eval"):
        tuner.tuning.TuneModel(
            pb.TuneModelRequest(
                training=training(train.id),
                search_space=[loguniform("hyper_parameters.learning_rate", 1e-4, 1e-2)],
                objectives=[pb.Objective(metric="eval_accuracy", direction=MAXIMIZE)],
            )
        )
