"""The searchers contract (the tuning service): a Searcher proposes each trial's parameter values
for Ray Tune. The conversions of a search space to Ray Tune and Optuna live in
forgeline.searchspace."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from forgeline import searchspace
from forgeline.contracts.base import Plugin

DISTRIBUTIONS = ("uniform", "loguniform", "integer", "choice")


@dataclass(frozen=True)
class SearchParameter:
    """One searched dimension: a training request field and the values it may take.

    ``distribution`` is one of DISTRIBUTIONS; ranges are [low, high] with both ends included
    (``log`` samples an integer range in log space); ``values`` are a choice's options.
    """

    name: str
    distribution: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    values: tuple[Any, ...] = ()

    # The conversions themselves are forgeline.searchspace's; these methods keep the tuning
    # service's calls working until it imports that module (a follow-up of issue 19).
    def tune_domain(self) -> Any:
        """The Ray Tune sampling domain of this parameter."""
        return searchspace.tune_domain(self)

    def optuna_distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        return searchspace.optuna_distribution(self)


@dataclass(frozen=True)
class Objective:
    """A metric the trials report after every epoch, and whether to "max"imize or "min"imize it."""

    metric: str
    mode: str


@dataclass(frozen=True)
class SearchContext:
    """What a searcher plans for. The first objective is the primary one; more than one asks
    for a multi-objective search. ``num_trials`` is 0 when the request left it to the searcher.
    The search algorithm must run at most ``max_concurrent`` trials at once (0: no limit)."""

    space: tuple[SearchParameter, ...]
    objectives: tuple[Objective, ...]
    num_trials: int
    max_concurrent: int
    seed: int


@dataclass
class SearchPlan:
    """How Ray Tune runs the search: its ``param_space`` (Tune domains by parameter name; empty
    when the search algorithm owns the space), the search algorithm (a ``ray.tune.search.Searcher``,
    or None for Tune's own random/grid generator over ``param_space``) and the trials to run."""

    param_space: dict[str, Any]
    search_alg: Any
    num_samples: int


class Searcher(Plugin, ABC):
    """Proposes each trial's parameter values for Ray Tune."""

    kind = "searchers"
    # True when it can optimise several objectives at once (and report a Pareto front).
    multi_objective: ClassVar[bool] = False

    def check(self, ctx: SearchContext) -> None:
        """Refuses a search this searcher cannot run (InvalidArgument naming the field, e.g.
        ``num_trials`` or ``searcher.config.<field>``), before any trial starts. The default
        accepts every search."""

    def trials(self, ctx: SearchContext) -> int:
        """How many trials the search will run."""
        return ctx.num_trials or 10

    @abstractmethod
    def build(self, ctx: SearchContext) -> SearchPlan:
        """The Tune search plan. Import Ray Tune (and its back-ends) inside this method."""
