"""The schedulers contract (the tuning service): a Scheduler decides whether a running trial goes
on after each epoch. ``Objective`` is the searchers' (one metric, judged the same way by both)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from forgeline.contracts.base import Plugin
from forgeline.contracts.searchers import Objective

__all__ = ["Objective", "Scheduler"]


class Scheduler(Plugin, ABC):
    """Decides whether a running trial goes on after each epoch (early stopping)."""

    kind = "schedulers"

    @abstractmethod
    def build(self, objective: Objective, max_iterations: int) -> Any:
        """A ``ray.tune.schedulers.TrialScheduler`` judging ``objective``, reported once per
        epoch (Tune's ``training_iteration``); no trial reports more than ``max_iterations``
        times."""
