"""Trial schedulers: ASHA (asynchronous successive halving) and FIFO (every trial runs out)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.schedulers import Objective, Scheduler
from forgeline.errors import InvalidArgument


class Asha(Scheduler):
    """Asynchronous successive halving: at each rung (grace period x reduction factor^k epochs)
    a trial goes on only if it is in the top 1/reduction_factor of the trials seen there."""

    name = "asha"

    class Config(PluginConfig):
        grace_period: int = Field(
            1, ge=1, description="Epochs every trial runs before it can be stopped."
        )
        reduction_factor: float = Field(
            2.0, gt=1.0, le=100.0, description="Keep the top 1/reduction_factor at each rung."
        )
        brackets: int = Field(1, ge=1, le=10, description="Brackets (1: plain ASHA).")
        max_t: int = Field(
            0, ge=0, description="Most epochs a trial runs (0: the most the training asks for)."
        )

    def build(self, objective: Objective, max_iterations: int) -> Any:
        from ray.tune.schedulers import AsyncHyperBandScheduler

        c = self.config
        max_t = c.max_t or max_iterations
        if c.grace_period >= max_t:
            raise InvalidArgument.for_field(
                "scheduler.config.grace_period",
                f"trials train at most {max_t} epoch(s), so a grace period of {c.grace_period} "
                f"never stops one early; lower it or train for more epochs",
            )
        return AsyncHyperBandScheduler(
            time_attr="training_iteration",
            metric=objective.metric,
            mode=objective.mode,
            max_t=max_t,
            grace_period=c.grace_period,
            reduction_factor=c.reduction_factor,
            brackets=c.brackets,
        )


class Fifo(Scheduler):
    """Runs every trial to the end, in the order the searcher proposes them."""

    name = "fifo"

    class Config(PluginConfig):
        pass

    def build(self, objective: Objective, max_iterations: int) -> Any:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
