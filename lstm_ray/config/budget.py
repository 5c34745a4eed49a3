"""`search.budget` and `search.prices`: what a sweep may spend in GPU-hours and money, and what an hour costs.

    search:
      budget: {gpu_hours: 20, usd: 150}  # stop the sweep at whichever comes first
      prices: {gpu_hour: 2.5, cpu_hour: 0.05}  # USD per GPU and per CPU core held for an hour

A trial costs the resources it holds (fractional GPUs their fraction) times the time it holds them
(`lstm_ray.search.cost`). A budget in USD needs prices: a node's own price, its Ray label
`lstm-ray/usd-per-hour` (cluster/*.yaml), shared by the trials on it, or else `search.prices`. Whether every node
has a price is known once the sweep joins its cluster (`search.cost.refuse_unpriced_budget`); a budget in
GPU-hours needs none.
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_ray.config.strict import at_least
from lstm_ray.errors import ConfigError


@dataclass
class PricesConfig:
    gpu_hour: float = 0.0  # USD for one GPU held for an hour (a 0.25 share costs a quarter)
    cpu_hour: float = 0.0  # USD for one CPU core held for an hour

    def check(self) -> None:
        at_least("search.prices.gpu_hour", self.gpu_hour, 0.0)
        at_least("search.prices.cpu_hour", self.cpu_hour, 0.0)

    @property
    def free(self) -> bool:
        return self.gpu_hour == 0 and self.cpu_hour == 0


@dataclass
class BudgetConfig:
    gpu_hours: float | None = None  # GPU-hours the sweep's trials may hold in all (0.5 GPU for 2 h: 1)
    usd: float | None = None  # money the sweep may spend, at the nodes' price labels or search.prices

    def check(self) -> None:
        """ConfigError for a negative or zero limit, or no limit at all."""
        for key in ("gpu_hours", "usd"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"search.budget.{key}", f"must be > 0, got {value!r}; leave it out for no limit")
        if self.gpu_hours is None and self.usd is None:
            raise ConfigError("search.budget", "names no limit; set gpu_hours, usd or both, e.g. {gpu_hours: 20}")


def check_budget(budget: BudgetConfig | None, prices: PricesConfig | None) -> None:
    """The checks of `search.budget` and `search.prices` (SearchConfig.check calls this)."""
    if prices is not None:
        prices.check()
    if budget is not None:
        budget.check()
