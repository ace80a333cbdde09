"""A tuning search space as Ray Tune and Optuna take it: each ``SearchParameter`` (the searchers
contract, forgeline.contracts.searchers) converted to a Tune sampling domain or an Optuna
distribution. Ray and Optuna are imported on use, so the contract stays light."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forgeline.contracts.searchers import SearchParameter


def tune_domain(parameter: SearchParameter) -> Any:
    """The Ray Tune sampling domain of ``parameter``."""
    from ray import tune

    p = parameter
    if p.distribution == "uniform":
        return tune.uniform(p.low, p.high)
    if p.distribution == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.distribution == "integer":
        low, high = int(p.low), int(p.high) + 1  # Tune's upper end is exclusive
        return tune.lograndint(low, high) if p.log else tune.randint(low, high)
    return tune.choice(list(p.values))


def optuna_distribution(parameter: SearchParameter) -> Any:
    """The Optuna distribution of ``parameter`` (choices that are not numbers, strings or
    booleans are compared by their text)."""
    import optuna

    d = optuna.distributions
    p = parameter
    if p.distribution == "uniform":
        return d.FloatDistribution(p.low, p.high)
    if p.distribution == "loguniform":
        return d.FloatDistribution(p.low, p.high, log=True)
    if p.distribution == "integer":
        return d.IntDistribution(int(p.low), int(p.high), log=p.log)
    return d.CategoricalDistribution([optuna_choice(v) for v in p.values])


def optuna_choice(value: Any) -> Any:
    """A choice value as Optuna can hold it: None, bool, int, float or str (else its JSON text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)
