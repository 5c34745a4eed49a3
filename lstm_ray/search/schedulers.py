"""Who stops (or evolves) trials: one builder over a registry of Ray Tune schedulers, all counting epochs.

    scheduler = build_scheduler(cfg)

- `asha`: asynchronous successive halving; rungs at grace_period * reduction_factor^k epochs below `max_t`
  (default train.max_epochs); trials that pass the last rung train on to train.max_epochs. `brackets` > 1
  staggers the first rung. With `search.objectives`, MO-ASHA (`mo_asha.py`) promotes by non-dominated sorting.
- `hyperband`: synchronous HyperBand (trials pause until their bracket can be judged).
- `median`: stops a trial whose best value so far is worse than the median of the other trials' running
  averages at the same epoch (from `grace_period` on, once 3 trials have got there).
- `pbt`: population-based training; every `perturbation_interval` epochs a trial in the bottom quarter takes
  the checkpoint and values of one in the top quarter and perturbs the values `search.space` allows to
  change in a running trial (kept inside their searched ranges).
- `fifo`: every trial trains to the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)

from lstm_ray.config import PBT_MUTABLE, ExperimentConfig
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.config.space import Distribution
from lstm_ray.search.mo_asha import MultiObjectiveASHA
from lstm_ray.search.searchers import search_space, to_tune_domain

EPOCHS = "training_iteration"  # one Tune result per epoch


def build_scheduler(cfg: ExperimentConfig) -> TrialScheduler:
    """The scheduler `cfg.search.scheduler` names; ValueError lists the valid names."""
    try:
        builder = SCHEDULERS[cfg.search.scheduler]
    except KeyError:
        raise ValueError(f"unknown search.scheduler {cfg.search.scheduler!r}; valid: {', '.join(SCHEDULERS)}") from None
    return builder(cfg)


def _last_rung(cfg: ExperimentConfig) -> int:
    return cfg.search.max_t or cfg.train.max_epochs


def _asha(cfg: ExperimentConfig) -> TrialScheduler:
    max_t = _last_rung(cfg)
    # With search.objectives, MO-ASHA: the same rungs, promotion by non-dominated sorting (mo_asha.py).
    multi = {"objectives": objective_pairs(cfg)} if cfg.search.objectives else {}
    return (MultiObjectiveASHA if multi else ASHAScheduler)(
        **multi,
        time_attr=EPOCHS,
        max_t=max_t,
        grace_period=min(cfg.search.grace_period, max_t),
        reduction_factor=cfg.search.reduction_factor,
        brackets=cfg.search.brackets,
        stop_last_trials=False,  # a trial past the last rung trains to train.max_epochs
    )


def _hyperband(cfg: ExperimentConfig) -> TrialScheduler:
    return HyperBandScheduler(
        time_attr=EPOCHS,
        max_t=_last_rung(cfg),
        reduction_factor=cfg.search.reduction_factor,
        stop_last_trials=False,
    )


def _median(cfg: ExperimentConfig) -> TrialScheduler:
    return MedianStoppingRule(time_attr=EPOCHS, grace_period=cfg.search.grace_period, min_samples_required=3)


def _pbt(cfg: ExperimentConfig) -> TrialScheduler:
    space = {path: dist for path, dist in search_space(cfg).items() if path in PBT_MUTABLE}
    return FinishingPBT(
        cfg.train.max_epochs,
        time_attr=EPOCHS,
        perturbation_interval=cfg.search.perturbation_interval,
        hyperparam_mutations={path: _mutation(dist) for path, dist in space.items()},
        quantile_fraction=0.25,
        resample_probability=0.25,
        custom_explore_fn=KeepInSpace(space),
    )


def _fifo(cfg: ExperimentConfig) -> TrialScheduler:
    return FIFOScheduler()


SCHEDULERS: dict[str, Callable[[ExperimentConfig], TrialScheduler]] = {
    "asha": _asha,
    "hyperband": _hyperband,
    "median": _median,
    "pbt": _pbt,
    "fifo": _fifo,
}


class FinishingPBT(PopulationBasedTraining):
    """PBT that leaves a trial alone at its last epoch: exploiting then would restart a trial that is done."""

    def __init__(self, max_epochs: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_epochs = max_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(EPOCHS, 0) >= self.max_epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def _mutation(dist: Distribution) -> Any:
    # A list makes PBT shift to a neighbouring option; a domain makes it multiply by 0.8 or 1.2 (or resample).
    return list(dist.args) if dist.is_finite else to_tune_domain(dist)


class KeepInSpace:
    """PBT's explore step, finished: perturbed values are put back inside their searched range and grid."""

    def __init__(self, space: dict[str, Distribution]):
        self.space = space

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for path, dist in self.space.items():
            if path in config and not dist.is_finite:
                config[path] = _clip(dist, config[path])
        return config


def _clip(dist: Distribution, value: float) -> float:
    low, high = dist.args[0], dist.args[1]
    if dist.kind == "randint":
        return int(min(max(round(value), low), high - 1))
    if dist.kind == "quniform":
        step = dist.args[2]
        value = low + round((value - low) / step) * step
        return min(max(value, low), low + math.floor((high - low) / step) * step)
    return min(max(value, low), high)
