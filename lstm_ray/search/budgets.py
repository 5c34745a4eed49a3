"""How much a sweep may spend: trials at once, trials in all, and when it is good enough to stop.

    search_alg = limit_trials(build_searcher(cfg), slots=4, max_trials=cfg.search.max_trials, hyperband=False)
    RunConfig(stop=TargetReached.from_config(cfg))      # search.stop: {val_rmse: 0.5}
    cost = CostBudget.from_config(cfg)                  # search.budget: {gpu_hours: 20, usd: 150}
    limit_trials(..., gate=cost.room_for_next); RunConfig(callbacks=[cost, ...], stop=cost)
    TuneConfig(time_budget_s=cfg.search.time_budget_s)  # search.time_budget: Tune's own wall-clock limit

Concurrency is applied here rather than through TuneConfig(max_concurrent_trials), which Ray ignores for
BasicVariantGenerator (grid and random) and which cannot be combined with a trial cap.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune
from ray._private import state as ray_state  # the GCS's actor table: the node a trial's actor runs on
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchAlgorithm, Searcher, SearchGenerator

from lstm_ray.config import TASK_METRICS, ExperimentConfig
from lstm_ray.search.cost import Budget, CostLedger, Spend, share_price

CAP_FILE = "lstm-ray-trial-cap.json"


def limit_trials(
    search_alg: Searcher | SearchAlgorithm,
    *,
    slots: int,
    max_trials: int | None,
    hyperband: bool,
    gate: Callable[[], bool] | None = None,
) -> SearchAlgorithm:
    """`search_alg` proposing at most `slots` running trials at once and `max_trials` trials in all, and none
    once `gate()` says no (a cost budget: `CostBudget.room_for_next`).

    With HyperBand no concurrency limit is set: its paused trials would count as running and a bracket
    could then never fill. Trials still never exceed what the cluster's resources fit.
    """
    if isinstance(search_alg, BasicVariantGenerator):
        search_alg.max_concurrent = 0 if hyperband else slots
    elif isinstance(search_alg, Searcher):
        search_alg = SearchGenerator(search_alg if hyperband else ConcurrencyLimiter(search_alg, slots))
    if max_trials is None and gate is None:
        return search_alg
    return TrialCap(search_alg, max_trials, gate)


class TrialCap(SearchAlgorithm):
    """Stops proposing after `max_trials` trials, whatever the algorithm (grid repeats included), and while
    `gate()` is False; a refusal is final once none of its trials runs (nothing then changes the gate's mind)."""

    def __init__(self, inner: SearchAlgorithm, max_trials: int | None, gate: Callable[[], bool] | None = None):
        self.inner, self.created, self.ended, self.gate = inner, 0, 0, gate
        self.max_trials = math.inf if max_trials is None else max_trials
        self.closed = False  # the gate said no with no trial running
        self.refused = False  # the gate's latest answer was no

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"gate": None}  # the gate is the sweep's live budget, set again on resume

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def total_samples(self) -> int:
        return int(min(self.inner.total_samples, self.max_trials))

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def add_configurations(self, experiments: Any) -> None:
        self.inner.add_configurations(experiments)

    def next_trial(self) -> Any:
        if self.created >= self.max_trials or self.closed:
            return None
        self.refused = self.gate is not None and not self.inner.is_finished() and not self.gate()
        if self.refused:
            self.closed = self.created <= self.ended
            return None
        trial = self.inner.next_trial()
        self.created += trial is not None
        return trial

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.ended += 1
        self.closed = self.closed or (self.refused and self.created <= self.ended)
        self.inner.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self) -> bool:
        return self.created >= self.max_trials or self.closed or self.inner.is_finished()

    def set_finished(self) -> None:
        self.inner.set_finished()

    def has_checkpoint(self, dirpath: str) -> bool:
        return os.path.exists(os.path.join(dirpath, CAP_FILE))

    def save_to_dir(self, dirpath: str, **kwargs: Any) -> None:
        self.inner.save_to_dir(dirpath, **kwargs)
        with open(os.path.join(dirpath, CAP_FILE), "w") as handle:
            json.dump({"created": self.created, "ended": self.ended}, handle)

    def restore_from_dir(self, dirpath: str) -> None:
        if self.inner.has_checkpoint(dirpath):
            self.inner.restore_from_dir(dirpath)
        with open(os.path.join(dirpath, CAP_FILE)) as handle:
            saved = json.load(handle)
        self.created, self.ended = saved["created"], saved.get("ended", saved["created"])


class TargetReached(tune.Stopper):
    """Ends the sweep once any trial reaches one of `search.stop`'s targets: every running trial stops at its next
    result, which keeps that result's checkpoint (stop_all would drop it, and a sweep whose trials were all halted
    in their first epoch would have no checkpoint to score), and `open` (a gate of `limit_trials`) starts no
    other."""

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
        return self.reached is not None

    def stop_all(self) -> bool:
        return False

    def open(self) -> bool:
        return self.reached is None


class CostBudget(tune.Callback, tune.Stopper):
    """`search.budget`: counts what each trial holds (Ray's resources of its placement group) for as long as it
    holds them, on the driver's clock, priced by its node's `lstm-ray/usd-per-hour` label (else search.prices),
    and the sweep's `slots` no trial holds (`CostLedger.idle`). As a Stopper it stops every trial at its first
    result past the cap; `room_for_next` (the gate of `limit_trials`) says no once the next trial could not finish
    within the budget at the measured rate, and for good once the cap is reached. Each trial's `cost_usd`,
    `gpu_hours` and the sweep's totals go to `log(metrics, trial_id, tags)` (None: the parent run), called before
    the trial's run closes when this callback comes before the tracker's. Tune saves the ledger with the
    experiment (`get_state`): a resumed sweep counts what was spent before."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic):
        self.budget, self.clock = budget, clock
        self.reached: str | None = None  # e.g. "gpu_hours 20.01 >= 20", once reached
        self.stopped: dict[str, str] = {}  # trial id -> why this stopper ended it (the trial's stop_reason tag)
        self.refused = False  # whether room_for_next kept a trial from starting
        self.holding = (0.0, 0.0)  # cpu, gpu of the latest trial started: what the next one is assumed to hold
        self.log: Callable[[dict[str, float], str | None], None] | None = None
        self.nodes: dict[str, tuple[dict[str, float], dict[str, str]]] = {}  # node id -> resources, labels

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, slots: int = 0) -> CostBudget | None:
        if cfg.search.budget is None:
            return None
        return cls(Budget(cfg.search.budget, CostLedger(cfg.search.prices, slots), cfg.train.max_epochs))

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"log": None, "clock": None, "nodes": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__ = {"stopped": {}, "nodes": {}, "refused": False} | state | {"clock": time.monotonic}

    def get_state(self) -> dict[str, Any]:
        """Saved by Tune with the experiment: the spend so far (a resume goes on from it) and why trials stopped."""
        ledger = self.budget.ledger.snapshot(now=self.clock())
        return {"ledger": ledger, "reached": self.reached, "refused": self.refused, "stopped": dict(self.stopped)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.budget.ledger.restore(state["ledger"])
        self.reached, self.refused = state["reached"], state["refused"]
        self.stopped.update(state["stopped"])  # in place: the trial logger holds this dict

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        held = trial.placement_group_factory.required_resources
        self.holding = (float(held.get("CPU", 0.0)), float(held.get("GPU", 0.0)))
        rate = self._node_price(trial, *self.holding)
        self.budget.ledger.start(
            trial.trial_id, cpu=self.holding[0], gpu=self.holding[1], now=self.clock(), usd_per_hour=rate
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.budget.ledger.epoch(trial.trial_id, int(result.get("epoch", result.get("training_iteration", 0))))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        now = self.clock()
        running = self.budget.ledger.running()
        self.budget.ledger.end(now=now)
        for trial_id in running:  # stopped with the sweep (stop_all): no trial_complete
            self._log(self.budget.ledger.trial(trial_id, now=now), trial_id)
        total, idle = self.budget.ledger.total(now=now), self.budget.ledger.idle(now=now)
        self._log(total, None, {"idle_usd": idle.usd, "idle_gpu_hours": idle.gpu_hours})

    def __call__(self, trial_id: str, result: dict) -> bool:
        # Each running trial stops at its next result, which keeps that result's checkpoint (stop_all would drop
        # it: a trial halted after one epoch would leave no checkpoint for the winner); no trial starts after.
        self.reached = self.reached or self.budget.over(now=self.clock())
        if self.reached is not None:
            self.stopped.setdefault(trial_id, f"stopped at the cost budget ({self.reached})")
        return self.reached is not None

    def stop_all(self) -> bool:
        return False

    def room_for_next(self) -> bool:
        room = self.budget.room_for_next(cpu=self.holding[0], gpu=self.holding[1], now=self.clock())
        self.refused = self.refused or not room
        return room

    def closed(self) -> bool:
        """Whether the budget kept a trial from starting or stopped one: it ended the sweep."""
        return self.reached is not None or self.refused

    def ended_line(self) -> str:
        """Why the budget ended the sweep, for the parent run's tag and the CLI's summary."""
        state = self.state()
        if self.reached:
            stopped = f"{len(self.stopped)} trial{'s' * (len(self.stopped) != 1)} stopped at the cap"
            return f"search.budget ended the sweep: {self.reached}; {stopped} ({state})"
        return f"search.budget ended the sweep: the next trial could not have finished within it ({state})"

    def state(self) -> str:
        """For the progress line: "spent 3.1/20 GPU-h, $12.30/$150"."""
        return self.budget.state(now=self.clock())

    def _ended(self, trial: Any) -> None:
        now = self.clock()
        self.budget.ledger.stop(trial.trial_id, now=now)
        self._log(self.budget.ledger.trial(trial.trial_id, now=now), trial.trial_id)

    def _log(self, spend: Spend, trial_id: str | None, extra: dict[str, float] | None = None) -> None:
        if self.log is not None:
            self.log({"cost_usd": spend.usd, "gpu_hours": spend.gpu_hours} | (extra or {}), trial_id)

    def _node_price(self, trial: Any, cpu: float, gpu: float) -> float | None:
        """The trial's share of its node's price label (`share_price`), None where the node has none. The node is
        the one Ray placed the trial's actor on (started when Tune calls on_trial_start)."""
        try:
            actor_id = trial.temporary_state.ray_actor._actor_id.hex()
            node_id = ray_state.actors(actor_id=actor_id)["Address"]["NodeID"]
        except (AttributeError, KeyError, TypeError):
            return None  # no actor (a test's fake trial): search.prices
        if node_id not in self.nodes:
            self.nodes = {n["NodeID"]: (n["Resources"], n.get("Labels") or {}) for n in ray.nodes()}
        resources, labels = self.nodes.get(node_id, ({}, {}))
        return share_price(cpu, gpu, resources, labels)
