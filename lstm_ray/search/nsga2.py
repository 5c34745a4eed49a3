"""`search.algorithm: nsga2`: Optuna's NSGA-II genetic sampler, for one objective or for search.objectives.

    sampler = nsga2_sampler(cfg)     # generations of nsga2_population(cfg) trials, seeded by search.seed

The first generation is random; each next one is bred (crossover, mutation) from the non-dominated, least crowded
trials so far. Only trials Optuna is told as complete (trained to `train.max_epochs` or stopped by
`train.patience`) fill a generation: trials a scheduler stops early are told as pruned and do not breed.
"""

from __future__ import annotations

import threading
from typing import Any

from optuna.samplers import NSGAIISampler

from lstm_ray.config import ExperimentConfig

MIN_POPULATION, MAX_POPULATION = 4, 50  # a smaller generation barely varies; 50 is Optuna's default


def nsga2_population(cfg: ExperimentConfig) -> int:
    """Trials per generation: a quarter of the sweep's trials (about four generations), within
    [MIN_POPULATION, MAX_POPULATION]."""
    trials = min(cfg.search.num_samples, cfg.search.max_trials or cfg.search.num_samples)
    return min(max(trials // 4, MIN_POPULATION), MAX_POPULATION)


def nsga2_sampler(cfg: ExperimentConfig) -> NSGAIISampler:
    return PicklableNSGAIISampler(population_size=nsga2_population(cfg), seed=cfg.search.seed)


class PicklableNSGAIISampler(NSGAIISampler):
    """Optuna's NSGAIISampler, which Tune can pickle with the experiment (Optuna 5 gives genetic samplers a
    threading lock, which cannot be pickled; the unpickled copy gets a fresh one)."""

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
