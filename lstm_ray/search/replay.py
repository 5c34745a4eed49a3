"""A tuning policy played on recorded learning curves: the real searcher and scheduler, a simulated clock.

    curves = RecordedCurves([RecordedTrial("t0", {"train.lr": 0.01}, [{"val_rmse": 0.9}, ...], [1.2, ...], True)])
    replay = simulate(cfg, curves, slots=8)       # cfg: the policy (search.*), slots: trials at once
    replay.wall_s, replay.epochs, replay.compute_s, replay.winner()

`lstm-ray replay` (`sweep/replay.py`) reads the curves of a recorded sweep from MLflow and calls this twice: with
the sweep's own settings and with the new ones. Nothing trains and Ray does not start: the searcher is the one
`build_searcher` makes, wrapped by `limit_trials` as the sweep wraps it, the scheduler the one `build_scheduler`
makes, and a small event loop plays Tune's controller: it asks for trials (`next_trial`, at most `slots` pending),
adds them to the scheduler, starts what `choose_trial_to_run` picks in free slots, hands each epoch's result to
`on_trial_result` and ends trials as `TuneController.stop_trial` does. Each epoch lasts its recorded seconds.

A configuration the sweep never trained (or not that far) takes each missing epoch from the nearest recorded trial
that has it: distance is the mean over the searched values of |a - b| / span (log scale for positive values
spanning 10x or more; 0 or 1 for a choice). Such trials are counted as filled, and the output says so.
"""

from __future__ import annotations

import heapq
import logging
import math
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.tune.experiment import Experiment, Trial
from ray.tune.schedulers import TrialScheduler

from lstm_ray.config import ExperimentConfig
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.errors import ConfigError
from lstm_ray.search.budgets import limit_trials
from lstm_ray.search.cost import Budget, CostLedger, Spend
from lstm_ray.search.pareto import pareto_front
from lstm_ray.search.schedulers import build_scheduler
from lstm_ray.search.searchers import build_param_space, build_searcher

UNREPLAYABLE = {"pbt": "pbt changes a trial's values while it trains, which no recorded curve holds"}


@dataclass
class RecordedTrial:
    """One trial of the recorded sweep, in the order the sweep started it."""

    trial_id: str
    params: dict[str, Any]  # its searched values (dotted paths)
    metrics: list[dict[str, float]]  # per epoch from 1: the val_* and train_* values it logged
    seconds: list[float]  # per epoch: how long it took
    ended_itself: bool  # it ended after its last epoch by itself (max_epochs or train.patience), not by a scheduler


@dataclass
class ReplayedTrial:
    trial_id: str
    config: dict[str, Any]
    epochs: int = 0
    seconds: float = 0.0
    best: float = math.nan  # its best value of the metric over the epochs it trained
    filled_epochs: int = 0  # epochs taken from another configuration's curve
    objectives: dict[str, float] = field(default_factory=dict)  # search.objectives at its best epoch of the metric


@dataclass
class Replay:
    """What a policy did on the recorded curves."""

    metric: str
    mode: str
    trials: list[ReplayedTrial] = field(default_factory=list)
    wall_s: float = 0.0
    objectives: list[tuple[str, str]] = field(default_factory=list)  # search.objectives; [] for one metric
    spend: Spend | None = None  # with search.budget or search.prices: what the replayed trials and slots cost
    budget_stop: str = ""  # why search.budget ended the replay, if it did

    @property
    def epochs(self) -> int:
        return sum(t.epochs for t in self.trials)

    @property
    def compute_s(self) -> float:
        return sum(t.seconds for t in self.trials)

    @property
    def filled(self) -> list[ReplayedTrial]:
        return [t for t in self.trials if t.filled_epochs]

    def stops(self) -> dict[str, int]:
        """Trial id -> the epochs it trained (where a scheduler stopped it, or where it ended)."""
        return {t.trial_id: t.epochs for t in self.trials}

    def winner(self) -> ReplayedTrial | None:
        """The trial with the best value at any epoch it trained (the epoch the sweep's pick uses)."""
        scored = [t for t in self.trials if math.isfinite(t.best)]
        if not scored:
            return None
        return (min if self.mode == "min" else max)(scored, key=lambda t: t.best)

    def front(self) -> list[ReplayedTrial]:
        """search.objectives: the trials on the Pareto front, each at its best epoch of the metric (as a sweep
        ranks them), best metric first; [] without objectives."""
        if not self.objectives:
            return []
        front = [self.trials[i] for i in pareto_front([t.objectives for t in self.trials], self.objectives)]
        return sorted(front, key=lambda t: t.best if self.mode == "min" else -t.best)


class RecordedCurves:
    """The recorded trials, and for any configuration the curve to replay (its own, else the nearest ones)."""

    def __init__(self, trials: list[RecordedTrial]):
        if not trials:
            raise ValueError("no recorded trial with a learning curve to replay")
        self.trials = trials
        self.keys = sorted({key for t in trials for key in t.params})
        self._spans = {key: _span([t.params.get(key) for t in trials]) for key in self.keys}
        self._unused: dict[str, list[RecordedTrial]] = defaultdict(list)  # a config's own recorded trials, in order
        for trial in trials:
            self._unused[self._key(trial.params)].append(trial)

    def best(self, metric: str, mode: str) -> float:
        """The best value any recorded trial reached: what a replay's regret is measured against."""
        values = [m[metric] for t in self.trials for m in t.metrics if math.isfinite(m.get(metric, math.nan))]
        return (min if mode == "min" else max)(values, default=math.nan)

    def sources(self, config: dict[str, Any]) -> list[RecordedTrial]:
        """Recorded trials to draw `config`'s epochs from, nearest first: its own trial (each recorded trial of a
        configuration serves one replayed trial, in the order the sweep ran them), then by distance."""
        own = self._unused.get(self._key(config))
        first = [own.pop(0)] if own else []
        rest = sorted(self.trials, key=lambda t: self.distance(config, t.params))
        return first + [t for t in rest if t not in first]

    def distance(self, a: dict[str, Any], b: dict[str, Any]) -> float:
        """Mean over the searched values of the normalised difference, in [0, 1]."""
        parts = [_difference(a.get(key), b.get(key), self._spans[key]) for key in self.keys]
        return sum(parts) / len(parts) if parts else 0.0

    def _key(self, params: dict[str, Any]) -> str:
        return repr([(key, _plain(params.get(key))) for key in self.keys])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _span(values: list[Any]) -> tuple[bool, float] | None:
    """(log scale?, span) of a numeric parameter's recorded values; None for a choice of non-numbers."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        return None
    low, high = min(numbers), max(numbers)
    log = low > 0 and high >= 10 * low
    return (log, math.log(high / low)) if log else (False, float(high - low))


def _difference(a: Any, b: Any, span: tuple[bool, float] | None) -> float:
    a, b = _plain(a), _plain(b)
    if a == b:
        return 0.0
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if span is None or not numeric or span[1] == 0:
        return 1.0
    log, width = span
    if log and a > 0 and b > 0:
        return min(abs(math.log(a / b)) / width, 1.0)
    return min(abs(a - b) / width, 1.0)


def check_replayable(cfg: ExperimentConfig) -> None:
    """ConfigError when `cfg`'s policy cannot be replayed on recorded curves."""
    search = cfg.search
    if search.scheduler in UNREPLAYABLE:
        raise ConfigError("search.scheduler", f"cannot be replayed: {UNREPLAYABLE[search.scheduler]}")
    if (search.budget or search.prices) and cfg.resources.gpu == "auto":
        raise ConfigError("search.budget", "a replay cannot price resources.gpu: auto shares; drop the budget with "
                                           "--set search.budget=null --set search.prices=null")  # fmt: skip
    if search.budget and search.budget.usd is not None and (search.prices is None or search.prices.free):
        raise ConfigError("search.budget.usd", "a replay has no node price labels; give prices, e.g. "
                                               "--set 'search.prices={gpu_hour: 2.5, cpu_hour: 0.05}'")  # fmt: skip


class _Controller:
    """The part of Tune's TuneController that schedulers call (HyperBand stops paused trials through it)."""

    def __init__(self, loop: _Loop):
        self.loop = loop

    def get_trials(self) -> list[Trial]:
        return list(self.loop.trials)

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.loop.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]

    def stop_trial(self, trial: Trial) -> None:
        self.loop.stop(trial)


def _replayed_trainable(config: dict[str, Any]) -> None:
    """Stands in for the trainable in the Experiment the searcher is given; never called."""


def simulate(cfg: ExperimentConfig, curves: RecordedCurves, slots: int, seed: int = 0) -> Replay:
    """Play `cfg`'s searcher and scheduler on `curves` with `slots` trials at once (see the module docstring).

    `seed` seeds numpy's global generator (restored after), which ASHA uses to pick a bracket when
    search.brackets > 1.
    Raises ConfigError for a policy `check_replayable` refuses.
    """
    check_replayable(cfg)
    if slots < 1:
        raise ConfigError("--slots", f"must be at least 1, got {slots}")
    # Quiet at INFO: HyperBand's "Bracket too small - Retrying...", Optuna's "A new study created in memory" (its
    # storage module's logger: importing Optuna sets the level of the "optuna" logger itself).
    quiet = [logging.getLogger(name) for name in ("ray.tune.schedulers.hyperband", "optuna.storages")]
    levels, state = [logger.level for logger in quiet], np.random.get_state()
    for logger in quiet:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    np.random.seed(seed)
    try:
        with tempfile.TemporaryDirectory() as folder:  # Tune's Experiment marks its storage path: not ~/ray_results
            return _Loop(cfg, curves, slots, folder).run()
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
        np.random.set_state(state)  # the caller's global generator is left as it was


class _Loop:
    """Tune's controller loop on a simulated clock."""

    def __init__(self, cfg: ExperimentConfig, curves: RecordedCurves, slots: int, folder: str):
        search = cfg.search
        self.cfg, self.curves, self.slots = cfg, curves, slots
        self.max_epochs = cfg.train.max_epochs
        self.search_alg = limit_trials(
            build_searcher(cfg), slots=slots, max_trials=search.max_trials, hyperband=search.scheduler == "hyperband"
        )
        space = build_param_space(cfg)
        self.search_alg.set_search_properties(search.metric, search.mode, space)
        experiment = Experiment(
            "replay", _replayed_trainable, config=space, num_samples=search.num_samples, storage_path=folder
        )
        self.search_alg.add_configurations([experiment])
        self.scheduler = build_scheduler(cfg)
        self.scheduler.set_search_properties(search.metric, search.mode)
        self.controller = _Controller(self)
        self.trials: list[Trial] = []
        self.sources: dict[str, list[RecordedTrial]] = {}
        self.replayed: dict[str, ReplayedTrial] = {}
        self.events: list[tuple[float, int, str]] = []  # (time its next epoch ends, order, trial id)
        self.by_id: dict[str, Trial] = {}
        self.now, self.order = 0.0, 0
        self.result = Replay(search.metric, search.mode, objectives=objective_pairs(cfg) if search.objectives else [])
        # search.budget on the simulated clock, at search.prices (node labels are not recorded).
        gpu = cfg.resources.gpu
        self.held = {"cpu": float(cfg.resources.cpu), "gpu": 0.0 if gpu == "auto" else float(gpu)}
        self.ledger = CostLedger(search.prices, slots) if search.budget or search.prices else None
        self.budget = Budget(search.budget, self.ledger, self.max_epochs) if search.budget else None

    def run(self) -> Replay:
        budget = self.cfg.search.time_budget_s
        while True:
            self.add_trials()
            self.start_trials()
            if not self.events:
                break
            self.now, _, trial_id = heapq.heappop(self.events)
            if budget is not None and self.now > budget:  # Tune ends the sweep: running trials are stopped
                self.now, self.result.budget_stop = budget, ""
                for trial in self.trials:
                    self.stop(trial)
                break
            self.epoch_done(self.by_id[trial_id])
            if self.budget is not None and (reason := self.budget.over(now=self.now)):
                self.result.budget_stop = f"at the cap: {reason}"  # Tune stops every running trial
                for trial in self.trials:
                    self.stop(trial)
                break
        if self.ledger is not None:
            self.ledger.end(now=self.now)
            self.result.spend = self.ledger.total(now=self.now)
        self.result.wall_s = self.now
        self.result.trials = [self.replayed[t.trial_id] for t in self.trials if self.replayed[t.trial_id].epochs]
        return self.result

    def add_trials(self) -> None:
        """Tune keeps up to TUNE_MAX_PENDING_TRIALS_PG (lstm-ray: the slots) trials pending."""
        while sum(t.status == Trial.PENDING for t in self.trials) < self.slots and not self.search_alg.is_finished():
            if self.budget is not None and not self.budget.room_for_next(**self.held, now=self.now):
                self.result.budget_stop = "the next trial could not have finished within it"
                return  # final once nothing runs: the loop ends with no event left
            trial = self.search_alg.next_trial()
            self.result.budget_stop = ""
            if trial is None:
                return
            self.trials.append(trial)
            self.by_id[trial.trial_id] = trial
            config = dict(trial.config)
            self.sources[trial.trial_id] = self.curves.sources(config)
            self.replayed[trial.trial_id] = ReplayedTrial(trial.trial_id, config)
            self.scheduler.on_trial_add(self.controller, trial)

    def start_trials(self) -> None:
        while sum(t.status == Trial.RUNNING for t in self.trials) < self.slots:
            trial = self.scheduler.choose_trial_to_run(self.controller)
            if trial is None:
                return
            trial.set_status(Trial.RUNNING)
            if self.ledger is not None:
                self.ledger.start(trial.trial_id, **self.held, now=self.now)
            self.next_epoch(trial)

    def next_epoch(self, trial: Trial) -> None:
        epoch = self.replayed[trial.trial_id].epochs + 1
        source = self.source(trial, epoch)
        if len(source.metrics) < epoch:  # no recorded trial got this far: it ends where the curves end
            self.stop(trial)
            return
        self.order += 1
        heapq.heappush(self.events, (self.now + source.seconds[epoch - 1], self.order, trial.trial_id))

    def source(self, trial: Trial, epoch: int) -> RecordedTrial:
        """The nearest recorded trial that trained `epoch` (the trial's own one when it did)."""
        sources = self.sources[trial.trial_id]
        return next((s for s in sources if len(s.metrics) >= epoch), sources[0])

    def epoch_done(self, trial: Trial) -> None:
        replayed = self.replayed[trial.trial_id]
        epoch = replayed.epochs + 1
        source = self.source(trial, epoch)
        replayed.epochs, replayed.seconds = epoch, replayed.seconds + source.seconds[epoch - 1]
        if self.ledger is not None:
            self.ledger.epoch(trial.trial_id, epoch)
        replayed.filled_epochs += source is not self.sources[trial.trial_id][0] or bool(
            self.curves.distance(replayed.config, source.params)
        )
        metrics = source.metrics[epoch - 1]
        value = metrics.get(self.result.metric, math.nan)
        if math.isfinite(value) and not (math.isfinite(replayed.best) and self._worse(value, replayed.best)):
            replayed.best = value
            replayed.objectives = {m: metrics.get(m, math.nan) for m, _ in self.result.objectives}
        ends_itself = epoch >= self.max_epochs or (source.ended_itself and len(source.metrics) == epoch)
        result = dict(metrics) | {
            "epoch": epoch,
            "training_iteration": epoch,
            "early_stopped": float(ends_itself and epoch < self.max_epochs),
            "time_this_iter_s": source.seconds[epoch - 1],
            "trial_id": trial.trial_id,
            "done": False,
        }
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != TrialScheduler.STOP:
            self.search_alg.on_trial_result(trial.trial_id, result)
        trial.update_last_result(result)
        if decision == TrialScheduler.STOP or ends_itself:
            self.stop(trial)
        elif decision == TrialScheduler.PAUSE:
            trial.set_status(Trial.PAUSED)
            if self.ledger is not None:
                self.ledger.stop(trial.trial_id, now=self.now)
        else:
            self.next_epoch(trial)

    def _worse(self, value: float, than: float) -> bool:
        return value > than if self.result.mode == "min" else value < than

    def stop(self, trial: Trial) -> None:
        """As `TuneController.stop_trial`: a running trial completes with its last result, a waiting one is
        removed from the scheduler; the searcher hears either way."""
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        if self.ledger is not None:
            self.ledger.stop(trial.trial_id, now=self.now)
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self.controller, trial)
            self.search_alg.on_trial_complete(trial.trial_id)
        else:
            last = dict(trial.last_result or {})
            self.scheduler.on_trial_complete(self.controller, trial, last)
            self.search_alg.on_trial_complete(trial.trial_id, result=last)
            self.events = [e for e in self.events if e[2] != trial.trial_id]
            heapq.heapify(self.events)
        trial.set_status(Trial.TERMINATED)
