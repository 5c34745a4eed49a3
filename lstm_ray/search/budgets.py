"""How much a sweep may spend: trials at once, trials in all, and when it is good enough to stop.

    search_alg = limit_trials(build_searcher(cfg), slots=4, max_trials=cfg.search.max_trials, hyperband=False)
    RunConfig(stop=TargetReached.from_config(cfg))      # search.stop: {val_rmse: 0.5}
    TuneConfig(time_budget_s=cfg.search.time_budget_s)  # search.time_budget: Tune's own wall-clock limit

Concurrency is applied here rather than through TuneConfig(max_concurrent_trials), which Ray ignores for
BasicVariantGenerator (grid and random) and which cannot be combined with a trial cap.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray import tune
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchAlgorithm, Searcher, SearchGenerator

from lstm_ray.config import TASK_METRICS, ExperimentConfig

CAP_FILE = "lstm-ray-trial-cap.json"


def limit_trials(
    search_alg: Searcher | SearchAlgorithm, *, slots: int, max_trials: int | None, hyperband: bool
) -> SearchAlgorithm:
    """`search_alg` proposing at most `slots` running trials at once and `max_trials` trials in all.

    With HyperBand no concurrency limit is set: its paused trials would count as running and a bracket
    could then never fill. Trials still never exceed what the cluster's resources fit.
    """
    if isinstance(search_alg, BasicVariantGenerator):
        search_alg.max_concurrent = 0 if hyperband else slots
    elif isinstance(search_alg, Searcher):
        search_alg = SearchGenerator(search_alg if hyperband else ConcurrencyLimiter(search_alg, slots))
    return search_alg if max_trials is None else TrialCap(search_alg, max_trials)


class TrialCap(SearchAlgorithm):
    """Stops proposing after `max_trials` trials, whatever the algorithm (grid repeats included)."""

    def __init__(self, inner: SearchAlgorithm, max_trials: int):
        self.inner, self.max_trials, self.created = inner, max_trials, 0

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def total_samples(self) -> int:
        return min(self.inner.total_samples, self.max_trials)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def add_configurations(self, experiments: Any) -> None:
        self.inner.add_configurations(experiments)

    def next_trial(self) -> Any:
        if self.created >= self.max_trials:
            return None
        trial = self.inner.next_trial()
        self.created += trial is not None
        return trial

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self) -> bool:
        return self.created >= self.max_trials or self.inner.is_finished()

    def set_finished(self) -> None:
        self.inner.set_finished()

    def has_checkpoint(self, dirpath: str) -> bool:
        return os.path.exists(os.path.join(dirpath, CAP_FILE))

    def save_to_dir(self, dirpath: str, **kwargs: Any) -> None:
        self.inner.save_to_dir(dirpath, **kwargs)
        with open(os.path.join(dirpath, CAP_FILE), "w") as handle:
            json.dump({"created": self.created}, handle)

    def restore_from_dir(self, dirpath: str) -> None:
        if self.inner.has_checkpoint(dirpath):
            self.inner.restore_from_dir(dirpath)
        with open(os.path.join(dirpath, CAP_FILE)) as handle:
            self.created = json.load(handle)["created"]


class TargetReached(tune.Stopper):
    """Ends the sweep (running trials are stopped) once any trial reaches one of `search.stop`'s targets."""

    def __init__(self, targets: dict[str, float], modes: dict[str, str]):
        self.targets, self.modes = targets, modes
        self.reached: str | None = None  # e.g. "val_rmse 0.48 <= 0.5", once reached

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> TargetReached | None:
        if not cfg.search.stop:
            return None
        return cls(dict(cfg.search.stop), {m: TASK_METRICS[cfg.data.task][m] for m in cfg.search.stop})

    def __call__(self, trial_id: str, result: dict) -> bool:
        for metric, target in self.targets.items():
            value = result.get(metric)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if value <= target if self.modes[metric] == "min" else value >= target:
                sign = "<=" if self.modes[metric] == "min" else ">="
                self.reached = self.reached or f"{metric} {value:.5g} {sign} {target:g}"
        return False

    def stop_all(self) -> bool:
        return self.reached is not None
