"""Checks a whole tuning request before any trial starts, and resolves it into a plan.

The training request is planned by the training planner of forgeline.finetune (the same checks
as TrainModel). Every searched parameter must name a field of that request; each end of its range
(each of its choices) is planned as a training request of its own, so a value the training would
refuse is refused here, naming ``search_space[i]``. The objectives must be metrics the training
reports after every epoch (a generative training's eval loss and perplexity; a generation
metric such as ROUGE is refused: trials do not generate), and the cluster must hold the
concurrent trials. No gRPC here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from forgeline import cluster
from forgeline.datasets import output_name
from forgeline.errors import FailedPrecondition, ForgelineError, InvalidArgument
from forgeline.finetune.planning import TrainPlan, TrainPlanner
from forgeline.finetune.spec import TrainSpec
from forgeline.models import GENERATIVE_TASKS, SEQUENCE_CLASSIFICATION
from forgeline.registry import (
    DISTRIBUTIONS,
    Objective,
    PluginChoice,
    PluginRegistry,
    Scheduler,
    SearchContext,
    Searcher,
    SearchParameter,
)

if TYPE_CHECKING:
    from forgeline.registry import FinetuneStrategy

DEFAULT_SEARCHER, DEFAULT_SCHEDULER = "optuna", "asha"
FINETUNE_PREFIX = "finetune.config."
# Tunable training fields: request path -> (TrainSpec / RecipeConfig field, is an integer).
HYPER_PARAMETERS: dict[str, tuple[str, bool]] = {
    "hyper_parameters.learning_rate": ("learning_rate", False),
    "hyper_parameters.batch_size_per_worker": ("batch_size", True),
    "hyper_parameters.epochs": ("epochs", True),
    "hyper_parameters.max_steps": ("max_steps", True),
    "hyper_parameters.warmup_ratio": ("warmup_ratio", False),
    "hyper_parameters.warmup_steps": ("warmup_steps", True),
    "hyper_parameters.weight_decay": ("weight_decay", False),
    "hyper_parameters.gradient_accumulation_steps": ("gradient_accumulation_steps", True),
    "hyper_parameters.max_sequence_length": ("max_length", True),
    "hyper_parameters.seed": ("seed", True),
}
ALWAYS_REPORTED = ("loss", "samples_per_second", "trainable_parameters", "total_parameters")


@dataclass(frozen=True)
class TuneSpec:
    train: TrainSpec
    space: tuple[SearchParameter, ...]
    objectives: tuple[Objective, ...] = ()  # mode "" = by the metric's name
    num_trials: int = 0
    max_concurrent: int = 0
    cpus: float = 0.0
    gpus: float = 0.0
    searcher: PluginChoice = PluginChoice(DEFAULT_SEARCHER)
    scheduler: PluginChoice = PluginChoice(DEFAULT_SCHEDULER)
    seed: int = 0
    output_name: str = ""


@dataclass
class TunePlan:
    spec: TuneSpec
    train: TrainPlan  # the training request as sent, planned
    searcher: Searcher
    scheduler: Scheduler
    search: SearchContext
    num_trials: int
    max_concurrent: int
    max_iterations: int  # the most epochs any trial reports
    resources: dict[str, float] = field(default_factory=dict)
    output_name: str = ""


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampled ``values`` as (TrainSpec / RecipeConfig hyper-parameter fields, finetune config
    fields); the two name the hyper-parameters alike."""
    fields: dict[str, Any] = {}
    finetune: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith(FINETUNE_PREFIX):
            finetune[name.removeprefix(FINETUNE_PREFIX)] = plain(value)
        else:
            target, integer = HYPER_PARAMETERS[name]
            fields[target] = int(value) if integer else float(value)
    return fields, finetune


def apply(spec: TrainSpec, values: dict[str, Any]) -> TrainSpec:
    """The training spec with the searched parameters' ``values`` set."""
    fields, finetune = split(values)
    choice = PluginChoice(spec.finetune.name, {**spec.finetune.config, **finetune})
    return replace(spec, finetune=choice, **fields)


def recipe_updates(base_finetune: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The RecipeConfig fields a trial's sampled ``values`` change."""
    fields, finetune = split(values)
    return {**fields, "finetune_config": {**base_finetune, **finetune}}


def plain(value: Any) -> Any:
    """A sampled value as plain Python (Tune hands out numpy scalars)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list | dict) else value


def default_mode(metric: str) -> str:
    return "min" if any(w in metric for w in ("loss", "perplexity", "parameters")) else "max"


def reported_metrics(train: TrainPlan) -> list[str]:
    """The metrics every trial of ``train`` reports after each epoch (what the recipe's
    ``epoch_metrics`` and its held-out scoring give): a classifier's accuracy, macro F1 and
    loss; a generative model's (causal LM, instruction, seq2seq) loss on the held-out label
    tokens and its perplexity."""
    reported = list(ALWAYS_REPORTED)
    if train.eval is not None:
        if train.task == SEQUENCE_CLASSIFICATION:
            reported += ["eval_accuracy", "eval_f1_macro", "eval_loss"]
        elif train.task in GENERATIVE_TASKS:
            reported += ["eval_loss", "eval_perplexity"]
    return reported


def _generation_metric(metric: str, plugins: set[str]) -> str:
    """The generation_metrics plugin ``metric`` names ("rouge" for "eval_rouge_rougeL"), or
    ""."""
    name = metric.removeprefix("eval_")
    return next((p for p in sorted(plugins) if name == p or name.startswith(p + "_")), "")


class TunePlanner:
    def __init__(self, registry: PluginRegistry, train_planner: TrainPlanner) -> None:
        self.registry = registry
        self.train_planner = train_planner

    def plan(self, spec: TuneSpec, *, check_values: bool = True) -> TunePlan:
        """The plan of ``spec``. ``check_values`` plans the training at each end of every range
        (each choice): done when a request arrives, skipped when its accepted operation runs."""
        if spec.train.output_name:
            raise InvalidArgument.for_field(
                "training.output_name", "name the best model with output_name instead"
            )
        if spec.train.trackers:
            raise InvalidArgument.for_field(
                "training.trackers",
                "a search does not mirror its trials into trackers; its trials stream as the "
                "operation's events (trial_<n>/<metric>)",
            )
        try:
            train = self.train_planner.plan_train(spec.train)
        except ForgelineError as exc:  # its fields are the training template's
            nested = exc.under("training")
            if nested is exc:
                raise
            raise nested from exc
        if train.hyper["num_workers"] > 1:
            # A Ray Train run inside a trial that the scheduler stops early keeps its worker
            # group's placement group: Ray Train frees it only through Ray's state API, which
            # needs the dashboard. Until that holds everywhere, a trial is one process.
            raise InvalidArgument.for_field(
                "training.scaling.num_workers",
                "each tuning trial trains in one process; give it more CPUs with "
                "resources_per_trial.cpus and run trials side by side with "
                "max_concurrent_trials",
            )
        space = self._space(spec, train.strategy, check_values)
        objectives = self._objectives(spec, train)
        searcher = self.registry.create(
            "searchers", spec.searcher.name or DEFAULT_SEARCHER, spec.searcher.config, "searcher"
        )
        if len(objectives) > 1 and not searcher.multi_objective:
            raise InvalidArgument.for_field(
                "objectives",
                f"searcher {searcher.name!r} optimises one objective; use a multi-objective "
                f"searcher (optuna) or name one objective",
            )
        if spec.num_trials < 0:
            raise InvalidArgument.for_field("num_trials", "must be >= 0")
        if spec.max_concurrent < 0:
            raise InvalidArgument.for_field("max_concurrent_trials", "must be >= 0")
        draft = SearchContext(space, objectives, spec.num_trials, 0, spec.seed)
        searcher.check(draft)
        trials = searcher.trials(draft)
        if not 1 <= trials <= 10_000:
            raise InvalidArgument.for_field("num_trials", f"{trials} is not in [1, 10000]")
        resources, concurrent = self._capacity(spec, train, trials)
        search = replace(draft, max_concurrent=concurrent)
        iterations = self._max_iterations(train, space)
        scheduler = self.registry.create(
            "schedulers",
            spec.scheduler.name or DEFAULT_SCHEDULER,
            spec.scheduler.config,
            "scheduler",
        )
        scheduler.build(objectives[0], iterations)  # refuses a config that cannot work here
        name = output_name(spec.output_name or f"{train.train.name}-{train.strategy.name}-tuned")
        return TunePlan(
            spec=spec,
            train=train,
            searcher=searcher,
            scheduler=scheduler,
            search=search,
            num_trials=trials,
            max_concurrent=concurrent,
            max_iterations=iterations,
            resources=resources,
            output_name=name,
        )

    # --- the search space -----------------------------------------------------------------------

    def _space(
        self, spec: TuneSpec, strategy: FinetuneStrategy, check_values: bool
    ) -> tuple[SearchParameter, ...]:
        if not spec.space:
            raise InvalidArgument.for_field("search_space", "name at least one parameter to search")
        fields = strategy.Config.model_fields
        seen: set[str] = set()
        for i, p in enumerate(spec.space):
            where = f"search_space[{i}]"
            if p.name in seen:
                raise InvalidArgument.for_field(f"{where}.name", f"{p.name!r} is searched twice")
            seen.add(p.name)
            integer = self._target(p.name, where, strategy, fields)
            self._check_distribution(p, where, integer)
            for value in self._corners(p) if check_values else ():
                self._check_value(spec.train, p, value, where)
        return tuple(spec.space)

    def _target(self, name: str, where: str, strategy, fields) -> bool:
        """Whether the field ``name`` names holds an integer; InvalidArgument if it names none."""
        if name in HYPER_PARAMETERS:
            return HYPER_PARAMETERS[name][1]
        if name.startswith(FINETUNE_PREFIX):
            key = name.removeprefix(FINETUNE_PREFIX)
            if key in fields:
                return fields[key].annotation is int
            raise InvalidArgument.for_field(
                f"{where}.name",
                f"finetune strategy {strategy.name!r} has no config field {key!r}; it has "
                f"{sorted(fields)}",
            )
        tunable = sorted(HYPER_PARAMETERS) + [f"{FINETUNE_PREFIX}{k}" for k in sorted(fields)]
        raise InvalidArgument.for_field(
            f"{where}.name",
            f"{name!r} is not a tunable field of the training request; tunable: "
            f"{', '.join(tunable)}",
        )

    @staticmethod
    def _check_distribution(p: SearchParameter, where: str, integer: bool) -> None:
        if p.distribution not in DISTRIBUTIONS:
            raise InvalidArgument.for_field(
                where, f"give a distribution: one of {', '.join(DISTRIBUTIONS)}"
            )
        kind = f"{where}.{p.distribution}"
        if p.distribution == "choice":
            if not p.values:
                raise InvalidArgument.for_field(f"{kind}.values", "give at least one value")
            fractional = [
                v
                for v in p.values
                if integer and not (isinstance(v, int | float) and float(v).is_integer())
            ]
            if fractional:
                raise InvalidArgument.for_field(
                    f"{kind}.values", f"{p.name} takes whole numbers, not {fractional[0]!r}"
                )
            return
        if not (math.isfinite(p.low) and math.isfinite(p.high)):
            raise InvalidArgument.for_field(kind, "low and high must be finite numbers")
        if p.low >= p.high:
            raise InvalidArgument.for_field(
                kind,
                f"the range [{p.low:g}, {p.high:g}] is "
                + ("empty" if p.low == p.high else "inverted")
                + "; low must be below high",
            )
        if (p.distribution == "loguniform" or p.log) and p.low <= 0:
            raise InvalidArgument.for_field(f"{kind}.low", "a log-scale range needs low > 0")
        if integer and p.distribution in ("uniform", "loguniform"):
            raise InvalidArgument.for_field(
                where, f"{p.name} takes whole numbers; search it with integer or choice"
            )

    @staticmethod
    def _corners(p: SearchParameter) -> list[Any]:
        return list(p.values) if p.distribution == "choice" else [p.low, p.high]

    def _check_value(self, train: TrainSpec, p: SearchParameter, value: Any, where: str) -> None:
        """Plans the training with ``value`` set: a value the training refuses is refused."""
        try:
            self.train_planner.plan_train(apply(train, {p.name: value}))
        except (ValueError, TypeError) as exc:
            raise InvalidArgument.for_field(where, f"{p.name} = {value!r}: {exc}") from exc
        except ForgelineError as exc:
            raise InvalidArgument.for_field(
                where, f"{p.name} = {value!r} is refused by the training: {exc.message}"
            ) from exc

    # --- objectives -----------------------------------------------------------------------------

    def _objectives(self, spec: TuneSpec, train: TrainPlan) -> tuple[Objective, ...]:
        reported = reported_metrics(train)
        if not spec.objectives:
            if train.eval is None:
                return (Objective("loss", "min"),)
            metric = "eval_accuracy" if train.task == SEQUENCE_CLASSIFICATION else "eval_loss"
            return (Objective(metric, default_mode(metric)),)
        generated = {e.name for e in self.registry.discover("generation_metrics")}
        out, seen = [], set()
        for i, o in enumerate(spec.objectives):
            if o.metric not in reported:
                where = f"objectives[{i}].metric"
                plugin = _generation_metric(o.metric, generated)
                if plugin:
                    raise InvalidArgument.for_field(
                        where,
                        f"{o.metric!r} scores generated text ({plugin}) and a trial "
                        f"generates nothing: generating every eval row after every epoch of "
                        f"every trial would cost more than the training. Tune on "
                        f"{' or '.join(m for m in reported if m.startswith('eval_')) or 'loss'}"
                        f", then score the best model with EvaluateModel's generation",
                    )
                hint = "" if train.eval is not None else " (eval_* metrics need training.eval)"
                raise InvalidArgument.for_field(
                    where,
                    f"the training does not report {o.metric!r}; it reports "
                    f"{', '.join(reported)}{hint}",
                )
            if o.metric in seen:
                raise InvalidArgument.for_field(
                    f"objectives[{i}].metric", f"{o.metric!r} is named twice"
                )
            seen.add(o.metric)
            out.append(Objective(o.metric, o.mode or default_mode(o.metric)))
        return tuple(out)

    # --- resources ------------------------------------------------------------------------------

    @staticmethod
    def _capacity(spec: TuneSpec, train: TrainPlan, trials: int) -> tuple[dict[str, float], int]:
        if spec.cpus < 0 or spec.gpus < 0:
            raise InvalidArgument.for_field("resources_per_trial", "must be >= 0")
        cpus = spec.cpus or train.hyper["cpus_per_worker"]
        gpus = spec.gpus or (1.0 if train.hyper["use_gpu"] else 0.0)
        # Never waits for Ray (a submit answers at once): before Ray is reached, the operation
        # plans again once it is (run_tune).
        have = cluster.capacity(connect=False)
        if have is None:
            return {"cpu": cpus, "gpu": gpus}, min(spec.max_concurrent or trials, trials)
        if cpus > have.cpus or gpus > have.gpus:
            raise FailedPrecondition(
                f"resources_per_trial: a trial needs {cpus:g} CPUs and {gpus:g} GPUs, the Ray "
                f"cluster has {have.cpus:g} and {have.gpus:g}",
                reason="CLUSTER_TOO_SMALL",
                metadata={"field": "resources_per_trial"},
            )
        fits = int(have.cpus // cpus)
        if gpus:
            fits = min(fits, int(have.gpus // gpus))
        if spec.max_concurrent > fits:
            raise FailedPrecondition(
                f"max_concurrent_trials: {spec.max_concurrent} trials x {cpus:g} CPUs"
                + (f" and {gpus:g} GPUs" if gpus else "")
                + f" do not fit the Ray cluster ({have.cpus:g} CPUs, {have.gpus:g} GPUs); "
                f"at most {fits} run at once",
                reason="CLUSTER_TOO_SMALL",
                metadata={"field": "max_concurrent_trials"},
            )
        concurrent = min(spec.max_concurrent or fits, trials)
        return {"cpu": cpus, "gpu": gpus}, concurrent

    @staticmethod
    def _max_iterations(train: TrainPlan, space: tuple[SearchParameter, ...]) -> int:
        """The most epochs (reports) a trial can run: every report-raising parameter at its
        largest value (more epochs, more steps, a larger batch or more accumulation all mean
        as many epochs or more)."""
        h = dict(train.hyper)
        for p in space:
            target = HYPER_PARAMETERS.get(p.name, ("", False))[0]
            if target in ("epochs", "max_steps", "batch_size", "gradient_accumulation_steps"):
                h[target] = int(max(p.values) if p.distribution == "choice" else p.high)
        batches = math.ceil(train.train.num_rows / h["batch_size"])
        steps_per_epoch = math.ceil(batches / h["gradient_accumulation_steps"])
        if h["max_steps"]:
            return max(1, math.ceil(h["max_steps"] / steps_per_epoch))
        return max(1, h["epochs"])
