"""Optuna's samplers through Ray Tune's OptunaSearch: TPE (Bayesian optimisation, the default),
and NSGA-II or multi-objective TPE for several objectives at once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.searchers import SearchContext, Searcher, SearchPlan
from forgeline.errors import InvalidArgument
from forgeline.searchspace import optuna_distribution

OPTUNA_CHOICE_TYPES = (type(None), bool, int, float, str)


class OptunaSearcher(Searcher):
    """Optuna TPE (Bayesian optimisation): models good and bad regions from the finished trials
    and proposes values likely to improve; NSGA-II or TPE for multi-objective searches."""

    name = "optuna"
    multi_objective = True

    class Config(PluginConfig):
        sampler: Literal["tpe", "nsga2"] = Field(
            "tpe",
            description="tpe: Tree-structured Parzen Estimator (one or more objectives); "
            "nsga2: the NSGA-II genetic algorithm (multi-objective).",
        )
        n_startup_trials: int = Field(
            5, ge=1, le=1000, description="TPE: random trials before the model takes over."
        )
        multivariate: bool = Field(
            True, description="TPE: model the parameters jointly, not one by one."
        )
        constant_liar: bool = Field(
            True,
            description="TPE: treat running trials as bad results so concurrent trials spread "
            "out instead of proposing the same point.",
        )
        population_size: int = Field(
            20, ge=2, le=10_000, description="NSGA-II: individuals per generation."
        )

    def check(self, ctx: SearchContext) -> None:
        for i, p in enumerate(ctx.space):
            bad = [v for v in p.values if not isinstance(v, OPTUNA_CHOICE_TYPES)]
            if bad:
                raise InvalidArgument.for_field(
                    f"search_space[{i}].choice.values",
                    f"optuna chooses among numbers, strings and booleans, not {bad[0]!r}; use "
                    f"the random or grid searcher for such values",
                )

    def sampler(self, ctx: SearchContext):
        import optuna

        c = self.config
        if c.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=c.population_size, seed=ctx.seed)
        return optuna.samplers.TPESampler(
            n_startup_trials=c.n_startup_trials,
            multivariate=c.multivariate,
            constant_liar=c.constant_liar,
            seed=ctx.seed,
        )

    def build(self, ctx: SearchContext) -> SearchPlan:
        import warnings

        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        with warnings.catch_warnings():  # multivariate / constant_liar are "experimental"
            warnings.simplefilter("ignore")
            sampler = self.sampler(ctx)
        many = len(ctx.objectives) > 1
        metrics = [o.metric for o in ctx.objectives]
        modes = [o.mode for o in ctx.objectives]
        search = OptunaSearch(
            space={p.name: optuna_distribution(p) for p in ctx.space},
            metric=metrics if many else metrics[0],
            mode=modes if many else modes[0],
            sampler=sampler,
        )
        if ctx.max_concurrent:
            search = ConcurrencyLimiter(search, max_concurrent=ctx.max_concurrent)
        return SearchPlan(param_space={}, search_alg=search, num_samples=self.trials(ctx))
