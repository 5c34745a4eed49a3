"""Top-k re-evaluation: retrain the sweep's best configurations with new seeds and rank them by the mean.

    search:
      reevaluate: {top_k: 3, seeds: 3}

A sweep's winner is the best of many noisy measurements, so its score flatters it. The `top_k` best distinct
configurations are each trained `seeds` more times, to `train.max_epochs` with no early stopping by a
scheduler, with train.seed set to seed + 1, seed + 2, ...; each run counts with its best epoch, and the
configurations are ranked by the mean of those scores (then by their spread). The winner's best run is the
model the sweep logs. The runs are child runs of the sweep tagged `lstm_ray.phase` = reevaluation.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from lstm_ray.config import ExperimentConfig
from lstm_ray.search.budgets import limit_trials
from lstm_ray.sweep.trainable import checkpoint_config, result_loggers
from lstm_ray.tracking.sweep import SweepTracker, UntrackedSweep

PHASE = "reevaluation"


@dataclass
class Candidate:
    params: dict[str, Any]  # the configuration's searched values
    sweep_value: float  # its best value in the sweep
    values: list[float] = field(default_factory=list)  # its best value in each re-evaluation run

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


@dataclass
class Reevaluation:
    metric: str
    seeds: list[int]  # the train.seed values every candidate was retrained with
    candidates: list[Candidate]  # best mean first
    best: Any  # the winner's best re-evaluation run (a tune.Result); its best checkpoint is the model

    def metrics(self) -> dict[str, float]:
        winner = self.candidates[0]
        return {f"reevaluated_{self.metric}_mean": winner.mean, f"reevaluated_{self.metric}_std": winner.std}


def reevaluate(
    cfg: ExperimentConfig,
    results: tune.ResultGrid,
    *,
    trainable: Any,
    tracker: SweepTracker | UntrackedSweep,
    slots: int,
) -> Reevaluation:
    """Retrain the top `search.reevaluate.top_k` configurations of `results` and rank them (see the module)."""
    search, metric, mode = cfg.search, cfg.search.metric, cfg.search.mode
    candidates = top_configurations(results, metric, mode, search.reevaluate.top_k)
    seeds = [cfg.train.seed + i for i in range(1, search.reevaluate.seeds + 1)]
    points = [c.params | {"train.seed": seed} for c in candidates for seed in seeds]
    logger = tracker.trial_logger(PHASE)
    storage, name = results.experiment_path.rsplit("/", 1)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            search_alg=limit_trials(Retrain(points), slots=slots, max_trials=None, hyperband=False),
            num_samples=len(points),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{name}-{PHASE}",
            storage_path=storage,
            callbacks=[logger, *result_loggers(cfg)],
            verbose=0,
            checkpoint_config=checkpoint_config(cfg),
        ),
    )
    reruns = tuner.fit()
    return rank(candidates, reruns, metric, mode, seeds)


class Retrain(Searcher):
    """Proposes exactly `points`, in order (Ray's own generators only fill in a param_space's keys)."""

    def __init__(self, points: list[dict[str, Any]]):
        super().__init__()
        self.points, self.proposed = points, 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.proposed == len(self.points):
            return Searcher.FINISHED
        self.proposed += 1
        return dict(self.points[self.proposed - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def top_configurations(results: Any, metric: str, mode: str, k: int) -> list[Candidate]:
    """The k distinct configurations with the best scores (each trial's best epoch), best first."""
    best: dict[tuple, Candidate] = {}
    for result in results:
        value = best_value(result, metric, mode)
        if math.isnan(value):
            continue
        params = {key: v for key, v in result.config.items() if key != "train.seed"}
        key = tuple(sorted((p, repr(v)) for p, v in params.items()))
        if key not in best or _better(value, best[key].sweep_value, mode):
            best[key] = Candidate(params, value)
    ordered = sorted(best.values(), key=lambda c: c.sweep_value, reverse=mode == "max")
    return ordered[:k]


def rank(candidates: list[Candidate], reruns: Any, metric: str, mode: str, seeds: list[int]) -> Reevaluation:
    """Attach each re-run's score to its candidate and order candidates by mean, then spread."""
    runs: dict[int, list[tuple[float, Any]]] = {}
    for result in reruns:
        params = {key: v for key, v in result.config.items() if key != "train.seed"}
        index = next(i for i, c in enumerate(candidates) if c.params == params)
        value = best_value(result, metric, mode)
        if not math.isnan(value):
            candidates[index].values.append(value)
            runs.setdefault(index, []).append((value, result))
    sign = 1.0 if mode == "min" else -1.0
    order = sorted(
        (i for i in range(len(candidates)) if candidates[i].values),
        key=lambda i: (sign * candidates[i].mean, candidates[i].std),
    )
    if not order:
        raise RuntimeError(f"no re-evaluation run reported {metric}; see the re-evaluation child runs")
    winner_runs = sorted(runs[order[0]], key=lambda pair: sign * pair[0])
    ranked = [candidates[i] for i in order] + [c for c in candidates if not c.values]
    return Reevaluation(metric, seeds, ranked, winner_runs[0][1])


def best_value(result: Any, metric: str, mode: str) -> float:
    """A trial's best finite value of `metric` over its epochs (NaN when it has none)."""
    frame = result.metrics_dataframe
    if frame is None or metric not in frame:
        return math.nan
    values = [float(v) for v in frame[metric] if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return math.nan
    return min(values) if mode == "min" else max(values)


def _better(value: float, other: float, mode: str) -> bool:
    return value < other if mode == "min" else value > other
