"""The tuning service's work: plan the search, run it on Ray Tune, commit the best model.

The trials run the fine-tuning recipe in-process on Ray (``forgeline.finetune``, the engine the
training service runs too: its planner, its recipe, and its way of committing a model with
lineage), never the training service over gRPC. A search's folder is named after its
operation, so the same operation run again after a restart restores the experiment instead of
starting over. No gRPC here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline import cluster, storage
from forgeline.artifacts import ArtifactRecord, ArtifactStore
from forgeline.datasets import DatasetRepository
from forgeline.errors import FailedPrecondition
from forgeline.finetune.build import materialize
from forgeline.finetune.commit import commit_run
from forgeline.finetune.planning import TrainPlanner
from forgeline.finetune.runner import fetch_model, recipe_config, shared_inputs, shared_runs
from forgeline.paths import folder_name
from forgeline.registry import Objective, PluginRegistry
from forgeline.services.tuning.planning import TunePlan, TunePlanner, TuneSpec, apply
from forgeline.services.tuning.search import (
    FAILED,
    STOPPED_EARLY,
    TrialRecord,
    importances,
    model_dir,
    pareto_front,
    run_search,
    trials_location,
)

if TYPE_CHECKING:
    from forgeline.operations import OperationContext
    from forgeline.paths import PathValidator
    from forgeline.settings import Settings

SERVICE = "forgeline.v1.TuningService"


@dataclass
class TuneOutcome:
    model: ArtifactRecord
    best: TrialRecord
    trials: list[TrialRecord]
    pareto_front: list[str] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    objectives: tuple[Objective, ...] = ()

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


class TuningJobs:
    def __init__(
        self,
        registry: PluginRegistry,
        datasets: DatasetRepository,
        artifacts: ArtifactStore,
        paths: PathValidator,
        settings: Settings,
    ) -> None:
        self.planner = TunePlanner(registry, TrainPlanner(registry, datasets, artifacts, paths))
        self.datasets = datasets
        self.artifacts = artifacts
        self.settings = settings
        self.runs_dir = settings.home.expanduser() / "services" / "tuning" / "runs"

    def plan(self, spec: TuneSpec) -> TunePlan:
        return self.planner.plan(spec)

    def run_tune(self, spec: TuneSpec, ctx: OperationContext, request_id: str) -> TuneOutcome:
        import time

        started = time.monotonic()
        # Ray is reached here, not when the request was accepted (a submit answers at once); the
        # plan then fits the trials to the cluster.
        cluster.ensure_ray(self.settings, ctx)
        plan = self.planner.plan(spec, check_values=False)  # checked when it was accepted
        key = request_id or ctx.name
        run_dir = self.runs_dir / folder_name(ctx.name)
        ctx.progress(0.0, "preparing the model")
        model_path = materialize(
            plan.train,
            ctx,
            key,
            datasets=self.datasets,
            artifacts=self.artifacts,
            producer=f"{SERVICE}/TuneModel",
        )
        config = recipe_config(plan.train, self.artifacts, model_path, run_dir)
        # With shared storage the trials may run on any machine: their inputs, the experiment
        # and their models live in the run's folder there.
        runs = shared_runs(self.artifacts, self.runs_dir)
        shared_run = runs.child(run_dir.name) if runs is not None else None
        if shared_run is not None:
            config = shared_inputs(config, self.artifacts, shared_run)
        base = config.model_dump()
        base["checkpoint_every"] = 0  # one report per epoch: what the schedulers judge
        book = run_search(plan, base, run_dir, ctx, shared_run)
        trials = sorted(book.trials.values(), key=lambda t: t.number)
        best = book.best()
        if best is None:
            failed = [t for t in trials if t.state == FAILED]
            raise FailedPrecondition(
                f"no trial of {len(trials)} trained to the end ({len(failed)} failed"
                + (f", e.g. trial {failed[0].number}: {failed[0].error}" if failed else "")
                + f", {sum(t.state == STOPPED_EARLY for t in trials)} stopped early)",
                reason="NO_COMPLETED_TRIAL",
            )
        front = []
        if len(plan.search.objectives) > 1:
            front = pareto_front(trials, plan.search.objectives)
            for t in front:
                t.pareto_optimal = True
        ranked = importances(trials, plan)
        trials_dir = trials_location(run_dir, shared_run)
        record = self._commit(plan, ctx, key, best, trials_dir, str(model_path), ranked)
        shutil.rmtree(run_dir, ignore_errors=True)  # the trials' checkpoints served their purpose
        if shared_run is not None:
            storage.remove(shared_run)
        return TuneOutcome(
            model=record,
            best=best,
            trials=trials,
            pareto_front=[t.id for t in front],
            importances=ranked,
            seconds=time.monotonic() - started,
            objectives=plan.search.objectives,
        )

    def _commit(
        self,
        plan: TunePlan,
        ctx: OperationContext,
        key: str,
        best: TrialRecord,
        trials_dir: str,
        model_path: str,
        ranked: dict[str, float],
    ) -> ArtifactRecord:
        done = self.artifacts.find_by_request_id(f"{key}/model")
        if done is not None:  # committed before a restart
            return done
        chosen = self.planner.train_planner.plan_train(apply(plan.spec.train, best.parameters))
        chosen.output_name = plan.output_name
        chosen.model = plan.train.model  # with the base materialized for a model from config
        search: dict[str, Any] = {
            "search_space": [p.__dict__ | {"values": list(p.values)} for p in plan.search.space],
            "objectives": [o.__dict__ for o in plan.search.objectives],
            "searcher": {"name": plan.searcher.name, "config": plan.searcher.config.model_dump()},
            "scheduler": {
                "name": plan.scheduler.name,
                "config": plan.scheduler.config.model_dump(),
            },
            "num_trials": plan.num_trials,
            "seed": plan.spec.seed,
        }
        config = {
            "tuning": search,
            "best_trial": {"id": best.id, "number": best.number},
            "best_parameters": best.parameters,
            "parameter_importances": ranked,
        }
        folder = model_dir(trials_dir, best.id)
        with self.artifacts.staging_path() as fetched:
            if storage.is_remote(folder):  # the best trial's model, from shared storage
                fetch_model(storage.Location(folder), fetched, model_path)
                folder = str(fetched)
            return commit_run(
                chosen,
                ctx,
                Path(folder),
                key,
                best.metrics,
                artifacts=self.artifacts,
                producer=f"{SERVICE}/TuneModel",
                config=config,
            )
