"""`lstm-ray replay`: a recorded sweep's learning curves, read from MLflow, replayed under another tuning policy.

    lstm-ray replay co2-lstm --set search.scheduler=hyperband --set search.reduction_factor=3 --slots 8

    comparison = replay_sweep("co2-lstm", ["search.reduction_factor=3"], slots=8, tracking_uri="sqlite:///mlflow.db")
    print("\n".join(comparison.lines()))

SWEEP is an MLflow experiment (its latest sweep) or a sweep's parent run id. The sweep's config is rebuilt from its
parent run's params; `--set` may change search settings only (the curves hold nothing else). The simulation is
`search/replay.py`; each epoch lasts the seconds its trial run logged for it (`epoch_seconds`), or, for a sweep
run before lstm-ray logged those, the trial run's duration spread evenly over its epochs (the output says which).
A sweep with search.objectives replays with its objectives (MO-ASHA, a multi-objective searcher) and each policy's
Pareto front. Bad input (an unknown sweep, a key outside search) raises ConfigError before anything is simulated.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig, SearchConfig, parse_config
from lstm_ray.config.loading import apply_override
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.errors import ConfigError
from lstm_ray.reports.record import SweepRecord
from lstm_ray.search.pareto import pareto_front
from lstm_ray.search.replay import RecordedCurves, RecordedTrial, Replay, check_replayable, simulate
from lstm_ray.tracking.callbacks import EPOCH_SECONDS
from lstm_ray.tracking.runs import TAG_PHASE, TAG_TRIAL_ID, children, connect, sweep_parent

SEARCH_KEYS = {f.name for f in dataclasses.fields(SearchConfig)}


@dataclass
class AsRun:
    """What the recorded sweep itself did."""

    wall_s: float  # first trial's start to last trial's end
    trials: int
    epochs: int
    compute_s: float
    winner: str  # its best trial's id
    winner_params: dict[str, Any]
    best: float
    front: int = 0  # search.objectives: trials on its Pareto front
    cost: dict[str, float] = dataclasses.field(default_factory=dict)  # the parent run's cost_usd and gpu_hours


@dataclass
class ReplayComparison:
    """The recorded sweep, its policy replayed and the new policy replayed, side by side."""

    sweep: str  # the parent run id
    metric: str
    mode: str
    slots: int
    changes: list[str]  # the --set items
    best_recorded: float
    as_run: AsRun
    recorded: Replay
    new: Replay
    timed: int = 0  # recorded trials whose epochs have their own logged seconds (the rest: run duration spread)

    def regret(self, replay: Replay) -> float:
        winner = replay.winner()
        if winner is None:
            return math.nan
        return winner.best - self.best_recorded if self.mode == "min" else self.best_recorded - winner.best

    def lines(self) -> list[str]:
        """The comparison as printed by `lstm-ray replay`."""
        title = ", ".join(self.changes) or "no changes"
        out = [f"Replay of sweep {self.sweep} ({self.slots} at a time; {title}):"]
        out.append(f"  {'':24s}{'as run':>14s}{'recorded policy':>18s}{'new policy':>14s}")
        both = (self.recorded, self.new)
        rows = [
            ("wall time (s)", f"{self.as_run.wall_s:.1f}", *(f"{r.wall_s:.1f}" for r in both)),
            ("trials", str(self.as_run.trials), *(str(len(r.trials)) for r in both)),
            ("compute (trial-epochs)", str(self.as_run.epochs), *(str(r.epochs) for r in both)),
            ("compute (s)", f"{self.as_run.compute_s:.1f}", *(f"{r.compute_s:.1f}" for r in both)),
            (f"winner {self.metric}", f"{self.as_run.best:.5g}", *(_best(r) for r in both)),
            ("regret", "0", *(f"{self.regret(r):.5g}" for r in both)),
        ]
        if self.recorded.objectives:
            rows.append(("Pareto front (trials)", str(self.as_run.front), *(str(len(r.front())) for r in both)))
        if any(r.spend is not None for r in both):
            rows += [
                ("cost (USD)", _number(self.as_run.cost.get("cost_usd"), ".4f"),
                 *(_number(r.spend and r.spend.usd, ".4f") for r in both)),
                ("GPU-hours", _number(self.as_run.cost.get("gpu_hours"), ".4g"),
                 *(_number(r.spend and r.spend.gpu_hours, ".4g") for r in both)),
            ]  # fmt: skip
        out += [f"  {name:24s}{a:>14s}{b:>18s}{c:>14s}" for name, a, b, c in rows]
        out.append(f"Winner (as run): {self.as_run.winner}, {_values(self.as_run.winner_params)}")
        for name, replay in (("recorded policy", self.recorded), ("new policy", self.new)):
            winner = replay.winner()
            if winner is not None:
                out.append(f"Winner ({name}): {_values(winner.config)}")
            if replay.objectives:
                out.append(f"Pareto front ({name}), each trial at its best {self.metric}:")
                out += [f"  {_values(t.objectives)}  {_values(t.config)}" for t in replay.front()]
        for name, replay in (("recorded policy", self.recorded), ("new policy", self.new)):
            if replay.budget_stop:
                out.append(f"Budget ({name}): search.budget ended the replay: {replay.budget_stop}")
            filled = replay.filled
            if filled:
                out.append(
                    f"Note ({name}): {len(filled)} of {len(replay.trials)} trials trained configurations or epochs the "
                    f"sweep never trained ({sum(t.filled_epochs for t in filled)} trial-epochs), filled from the "
                    "nearest recorded trial"
                )
        out.append(f"Epoch times: {self.timing()}")
        return out

    def timing(self) -> str:
        """Where the simulated clock's epoch times come from."""
        trials = self.as_run.trials
        if self.timed == trials:
            return f"as logged per epoch ({EPOCH_SECONDS}) by all {trials} trials"
        spread = "each trial run's duration spread evenly over its epochs"
        if not self.timed:
            return f"{spread} (the sweep logged no {EPOCH_SECONDS})"
        return f"as logged per epoch ({EPOCH_SECONDS}) by {self.timed} of {trials} trials; for the others, {spread}"


def _values(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()) or "base config"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _best(replay: Replay) -> str:
    winner = replay.winner()
    return "none" if winner is None else f"{winner.best:.5g}"


def replay_sweep(sweep: str, changes: list[str], *, slots: int | None, tracking_uri: str) -> ReplayComparison:
    """Replay `sweep` under its own policy and under its policy changed by `changes` (`search.key=value`)."""
    for item in changes:
        key = item.partition("=")[0].strip()
        section, _, name = key.partition(".")
        if section != "search" or name.split(".")[0] not in SEARCH_KEYS:
            raise ConfigError("--set", f"{key!r} is not a search setting; replay changes search.* keys only, "
                                       "e.g. --set search.reduction_factor=3")  # fmt: skip
    if slots is not None and slots < 1:
        raise ConfigError("--slots", f"must be at least 1, got {slots}")
    client = connect(tracking_uri)
    parent = sweep_parent(client, sweep, tracking_uri)
    record = SweepRecord.from_mlflow(client, parent.info.run_id)
    raw = unflatten(record.base)
    recorded_cfg = parse_config(raw)
    for item in changes:
        apply_override(raw, item)
    new_cfg = parse_config(raw)
    check_replayable(recorded_cfg)
    check_replayable(new_cfg)
    runs = {
        r.data.tags[TAG_TRIAL_ID]: r.info
        for r in children(client, parent.info.experiment_id, parent.info.run_id)
        if TAG_TRIAL_ID in r.data.tags and not r.data.tags.get(TAG_PHASE)
    }
    trials = recorded_trials(record, runs)
    timed = {t.trial_id for t in record.trials if _logged_seconds(t.history) is not None}
    if not trials:
        raise ConfigError("SWEEP", f"sweep {parent.info.run_id} has no finished trial with a learning curve")
    for cfg in (recorded_cfg, new_cfg):
        check_recorded(cfg, trials)
    slots = slots or recorded_slots(recorded_cfg, [runs[t.trial_id] for t in trials])
    metric, mode = recorded_cfg.search.metric, recorded_cfg.search.mode
    spans = [(runs[t.trial_id].start_time, runs[t.trial_id].end_time) for t in trials]
    best_trial = (min if mode == "min" else max)(trials, key=lambda t: _trial_best(t, metric, mode))
    objectives = objective_pairs(recorded_cfg) if recorded_cfg.search.objectives else []
    as_run = AsRun(
        wall_s=(max(end for _, end in spans) - min(start for start, _ in spans)) / 1000,
        trials=len(trials),
        epochs=sum(len(t.metrics) for t in trials),
        compute_s=sum(sum(t.seconds) for t in trials),
        winner=best_trial.trial_id,
        winner_params=best_trial.params,
        best=_trial_best(best_trial, metric, mode),
        front=len(pareto_front([_at_best(t, metric, mode) for t in trials], objectives)) if objectives else 0,
        cost={k: v for k, v in parent.data.metrics.items() if k in ("cost_usd", "gpu_hours")},
    )
    return ReplayComparison(
        sweep=parent.info.run_id,
        metric=metric,
        mode=mode,
        slots=slots,
        changes=list(changes),
        best_recorded=RecordedCurves(trials).best(metric, mode),
        as_run=as_run,
        recorded=simulate(recorded_cfg, RecordedCurves(trials), slots),
        new=simulate(new_cfg, RecordedCurves(trials), slots),
        timed=sum(t.trial_id in timed for t in trials),
    )


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """The parent run's `section.key` params (parsed) back to a config mapping."""
    raw: dict[str, Any] = {}
    for key, value in flat.items():
        section, dot, leaf = key.partition(".")
        if dot:
            raw.setdefault(section, {})[leaf] = value
        else:
            raw[key] = value
    return raw


def recorded_trials(record: SweepRecord, runs: dict[str, Any]) -> list[RecordedTrial]:
    """The trials that finished (completed or stopped early), in the order the sweep created them."""
    out = []
    for trial in sorted(record.trials, key=lambda t: _created(t.trial_id, runs.get(t.trial_id))):
        info = runs.get(trial.trial_id)
        if trial.outcome == outcomes.FAILED or info is None or not info.end_time or "epoch" not in trial.history:
            continue
        history = trial.history[trial.history["epoch"] >= 1].sort_values("epoch")  # step 0 holds sizes, no epoch
        if list(history["epoch"]) != list(range(1, len(history) + 1)):
            continue  # a gap in its curve: nothing to replay it from
        size = {"model_parameters": trial.model_parameters} if math.isfinite(trial.model_parameters) else {}
        rows = history.drop(columns=["epoch", EPOCH_SECONDS], errors="ignore").to_dict("records")
        metrics = [{k: float(v) for k, v in row.items()} | size for row in rows]
        seconds = _logged_seconds(trial.history)
        if seconds is None:
            seconds = [max(info.end_time - info.start_time, 0) / 1000 / len(metrics)] * len(metrics)
        ended_itself = trial.outcome == outcomes.COMPLETED
        out.append(RecordedTrial(trial.trial_id, trial.params, metrics, seconds, ended_itself))
    return out


def _logged_seconds(history: Any) -> list[float] | None:
    """Each epoch's logged EPOCH_SECONDS from epoch 1, or None where the trial's run lacks one."""
    if EPOCH_SECONDS not in history or "epoch" not in history:
        return None
    seconds = history[history["epoch"] >= 1].sort_values("epoch")[EPOCH_SECONDS].astype(float).tolist()
    return seconds if seconds and all(math.isfinite(v) and v >= 0 for v in seconds) else None


def check_recorded(cfg: ExperimentConfig, trials: list[RecordedTrial]) -> None:
    """ConfigError when the policy ranks trials on a metric no recorded trial logged (e.g. `latency_ms` of a
    sweep run before lstm-ray logged it)."""
    logged = {key for trial in trials for epoch in trial.metrics for key in epoch}
    for metric, _ in objective_pairs(cfg):
        if metric not in logged:
            key = "search.objectives" if cfg.search.objectives else "search.metric"
            raise ConfigError(key, f"the sweep's trials logged no {metric}, so no policy ranking on it can be replayed")


def recorded_slots(cfg: ExperimentConfig, infos: list[Any]) -> int:
    """Trials at once in the recorded sweep: search.max_concurrent when it was set, else the most runs that
    overlapped in time."""
    if cfg.search.max_concurrent:
        return cfg.search.max_concurrent
    edges = sorted([(i.start_time, 1) for i in infos] + [(i.end_time, -1) for i in infos])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return max(most, 1)


def _created(trial_id: str, info: Any) -> tuple[float, float, str]:
    """When the sweep created the trial: Tune's variant generator numbers its ids (`a1b2c_00003`); a searcher's
    ids are random (`dfd18b67`), and then the trial run's start says (exactly with one trial at a time)."""
    head, _, tail = trial_id.rpartition("_")
    start = float(info.start_time) if info is not None and info.start_time else math.inf
    return (int(tail) if head and tail.isdigit() else math.inf, start, trial_id)


def _at_best(trial: RecordedTrial, metric: str, mode: str) -> dict[str, float]:
    """The trial's values at its best epoch of `metric` (where a sweep ranks it on its objectives)."""
    best = _trial_best(trial, metric, mode)
    return next((m for m in trial.metrics if m.get(metric) == best), trial.metrics[-1])


def _trial_best(trial: RecordedTrial, metric: str, mode: str) -> float:
    values = [m[metric] for m in trial.metrics if math.isfinite(m.get(metric, math.nan))]
    return (min if mode == "min" else max)(values, default=math.nan)
