"""Random and grid search: Ray Tune's own variant generator over Tune domains."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.searchers import SearchContext, Searcher, SearchParameter, SearchPlan
from forgeline.errors import InvalidArgument
from forgeline.searchspace import tune_domain

MAX_GRID = 10_000


class RandomSearch(Searcher):
    """Samples every parameter independently at random (the baseline every searcher must beat)."""

    name = "random"

    class Config(PluginConfig):
        pass

    def build(self, ctx: SearchContext) -> SearchPlan:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return SearchPlan(
            param_space={p.name: tune_domain(p) for p in ctx.space},
            search_alg=BasicVariantGenerator(
                random_state=ctx.seed, max_concurrent=ctx.max_concurrent
            ),
            num_samples=self.trials(ctx),
        )


class GridSearch(Searcher):
    """Tries every combination of a grid: each choice's values, and evenly spaced points of each
    range (geometrically spaced for loguniform and log integer ranges)."""

    name = "grid"

    class Config(PluginConfig):
        points: int = Field(
            3, ge=2, le=100, description="Points per range (uniform, loguniform, integer)."
        )

    def axis(self, parameter: SearchParameter) -> list[Any]:
        if parameter.distribution == "choice":
            return list(parameter.values)
        n, low, high = self.config.points, parameter.low, parameter.high
        geometric = parameter.distribution == "loguniform" or (
            parameter.distribution == "integer" and parameter.log
        )
        if geometric:
            points = [low * (high / low) ** (i / (n - 1)) for i in range(n)]
        else:
            points = [low + (high - low) * i / (n - 1) for i in range(n)]
        if parameter.distribution == "integer":
            return sorted({round(p) for p in points})
        return points

    def grid_size(self, ctx: SearchContext) -> int:
        return math.prod(len(self.axis(p)) for p in ctx.space)

    def check(self, ctx: SearchContext) -> None:
        size = self.grid_size(ctx)
        if size > MAX_GRID:
            raise InvalidArgument.for_field(
                "search_space", f"the grid has {size} points, more than {MAX_GRID}"
            )
        if ctx.num_trials and ctx.num_trials != size:
            raise InvalidArgument.for_field(
                "num_trials",
                f"the grid has {size} points; set num_trials to {size} (or 0), or change "
                f"searcher.config.points or the search space",
            )

    def trials(self, ctx: SearchContext) -> int:
        return self.grid_size(ctx)

    def build(self, ctx: SearchContext) -> SearchPlan:
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return SearchPlan(
            param_space={p.name: tune.grid_search(self.axis(p)) for p in ctx.space},
            search_alg=BasicVariantGenerator(
                random_state=ctx.seed, max_concurrent=ctx.max_concurrent
            ),
            num_samples=1,
        )
