"""forgeline.v1.TuningService over gRPC: translates messages to TuningJobs calls and back."""

from __future__ import annotations

import math

from google.protobuf import json_format

from forgeline.convert import artifact, plugin_choice, struct
from forgeline.datasets import DatasetRepository
from forgeline.errors import InvalidArgument
from forgeline.finetune.spec import train_spec
from forgeline.operations import MethodSpec
from forgeline.registry import Objective, PluginChoice, SearchParameter
from forgeline.server import Kernel, ServiceDefinition
from forgeline.services.tuning.jobs import SERVICE, TuneOutcome, TuningJobs
from forgeline.services.tuning.planning import DEFAULT_SCHEDULER, DEFAULT_SEARCHER, TuneSpec
from forgeline.services.tuning.search import TrialRecord
from forgeline.v1 import tuning_service_pb2 as pb
from forgeline.v1 import tuning_service_pb2_grpc

DIRECTIONS = {
    pb.OBJECTIVE_DIRECTION_UNSPECIFIED: "",
    pb.OBJECTIVE_DIRECTION_MAXIMIZE: "max",
    pb.OBJECTIVE_DIRECTION_MINIMIZE: "min",
}
MODES = {"max": pb.OBJECTIVE_DIRECTION_MAXIMIZE, "min": pb.OBJECTIVE_DIRECTION_MINIMIZE}
TRIAL_STATES = {
    "pending": pb.TRIAL_STATE_PENDING,
    "running": pb.TRIAL_STATE_RUNNING,
    "completed": pb.TRIAL_STATE_COMPLETED,
    "stopped_early": pb.TRIAL_STATE_STOPPED_EARLY,
    "failed": pb.TRIAL_STATE_FAILED,
    "cancelled": pb.TRIAL_STATE_CANCELLED,
}


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """The entry point of ``forgeline.services: tuning``."""
    jobs = TuningJobs(
        kernel.registry,
        DatasetRepository(kernel.artifacts),
        kernel.artifacts,
        kernel.paths,
        kernel.settings,
    )
    servicer = TuningServicer(kernel, jobs)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=tuning_service_pb2_grpc.add_TuningServiceServicer_to_server,
            methods=servicer.method_specs(),
        )
    ]


def search_parameter(message: pb.SearchParameter, i: int) -> SearchParameter:
    kind = message.WhichOneof("distribution")
    if not message.name:
        raise InvalidArgument.for_field(f"search_space[{i}].name", "name a training field")
    if kind in ("uniform", "loguniform"):
        r = getattr(message, kind)
        return SearchParameter(message.name, kind, r.low, r.high)
    if kind == "integer":
        r = message.integer
        return SearchParameter(message.name, kind, float(r.low), float(r.high), log=r.log)
    if kind == "choice":
        values = tuple(json_format.MessageToDict(v) for v in message.choice.values)
        return SearchParameter(message.name, kind, values=values)
    return SearchParameter(message.name, "")  # the planner names the missing distribution


def tune_spec(r: pb.TuneModelRequest) -> TuneSpec:
    if r.training.request_id:
        raise InvalidArgument.for_field(
            "training.request_id", "set request_id on the TuneModelRequest instead"
        )
    for i, o in enumerate(r.objectives):
        if o.direction not in DIRECTIONS:
            raise InvalidArgument.for_field(
                f"objectives[{i}].direction", f"unknown value {o.direction}"
            )
    return TuneSpec(
        train=train_spec(r.training),
        space=tuple(search_parameter(p, i) for i, p in enumerate(r.search_space)),
        objectives=tuple(Objective(o.metric, DIRECTIONS[o.direction]) for o in r.objectives),
        num_trials=r.num_trials,
        max_concurrent=r.max_concurrent_trials,
        cpus=r.resources_per_trial.cpus,
        gpus=r.resources_per_trial.gpus,
        searcher=plugin_choice(r.searcher) if r.searcher.name else PluginChoice(DEFAULT_SEARCHER),
        scheduler=(
            plugin_choice(r.scheduler) if r.scheduler.name else PluginChoice(DEFAULT_SCHEDULER)
        ),
        seed=r.seed,
        output_name=r.output_name,
    )


def trial_pb(t: TrialRecord) -> pb.Trial:
    return pb.Trial(
        id=t.id,
        number=t.number,
        state=TRIAL_STATES.get(t.state, pb.TRIAL_STATE_UNSPECIFIED),
        parameters=struct(t.parameters),
        metrics={k: v for k, v in t.metrics.items() if math.isfinite(v)},
        objective_history=t.history,
        iterations=t.iterations,
        seconds=t.seconds,
        error=t.error,
        pareto_optimal=t.pareto_optimal,
    )


def response(outcome: TuneOutcome) -> pb.TuneModelResponse:
    best = trial_pb(outcome.best)
    return pb.TuneModelResponse(
        model=artifact(outcome.model),
        best_trial=best,
        best_parameters=best.parameters,
        best_metrics=best.metrics,
        trials=[trial_pb(t) for t in outcome.trials],
        pareto_front=outcome.pareto_front,
        parameter_importances=outcome.importances,
        completed_trials=outcome.count("completed"),
        stopped_early_trials=outcome.count("stopped_early"),
        failed_trials=outcome.count("failed"),
        seconds=outcome.seconds,
        objectives=[
            pb.Objective(metric=o.metric, direction=MODES[o.mode]) for o in outcome.objectives
        ],
    )


class TuningServicer(tuning_service_pb2_grpc.TuningServiceServicer):
    def __init__(self, kernel: Kernel, jobs: TuningJobs) -> None:
        self._jobs = jobs

    def method_specs(self) -> list[MethodSpec]:
        jobs = self._jobs

        def tune(r: pb.TuneModelRequest, ctx) -> pb.TuneModelResponse:
            return response(jobs.run_tune(tune_spec(r), ctx, r.request_id))

        return [MethodSpec("TuneModel", tune, lambda r: jobs.plan(tune_spec(r)))]
