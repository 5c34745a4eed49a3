"""How a sweep ends: the winner scored on the test split and logged with the sweep's results, or, when the sweep
fails or is interrupted, its parent run closed with the reason.

    with closed_on_failure(tracker):                   # KILLED on Ctrl-C, FAILED on an error; then re-raised
        summary = finish_sweep(cfg, data, results, tracker, started, reevaluation)

The report is drawn here (reports/) and handed to the tracker as a folder: tracking/ never imports reports/.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pandas as pd
from ray import tune

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.data.dataset import PreparedData
from lstm_ray.data.windows import WindowSetting, window_setting
from lstm_ray.errors import one_line
from lstm_ray.reports.page import write_report
from lstm_ray.reports.record import SweepRecord
from lstm_ray.search.pareto import pareto_front
from lstm_ray.sweep.comparison import BaselineComparison, compare_to_baselines, forecast_frame
from lstm_ray.sweep.front_choice import front_winner
from lstm_ray.sweep.manifest import build_manifest
from lstm_ray.sweep.reevaluate import Reevaluation
from lstm_ray.sweep.trainable import load_checkpoint_state, refit_on_holdout
from lstm_ray.sweep.winner import pick_winner
from lstm_ray.tracking.runs import FORECAST_ARTIFACT, TAG_BEST_BASELINE, TAG_BEST_TRIAL_ID, TAG_ERROR
from lstm_ray.tracking.serving import raw_example
from lstm_ray.tracking.sweep import SweepTracker, UntrackedSweep
from lstm_ray.train.models import model_from_state
from lstm_ray.train.training import evaluate, predict

INTERRUPTED = "the sweep was interrupted; `lstm-ray resume` continues it"
FAILURES_ARTIFACT = "failures.txt"  # a failed sweep's parent run: each reason, with the trials it hit
TAG_LIMIT = 5000  # characters MLflow keeps of a tag value


@dataclass
class SweepSummary:
    name: str
    metric: str
    mode: str
    best_params: dict[str, Any]
    best_value: float
    test_metrics: dict[str, float]
    counts: dict[str, int]
    parent_run_id: str
    model_uri: str
    storage_path: str
    elapsed_s: float
    failures: dict[str, str] = field(default_factory=dict)  # trial id -> reason
    reevaluation: Reevaluation | None = None  # search.reevaluate: every candidate's scores over new seeds
    comparison: BaselineComparison | None = None  # the winner against the naive baselines
    tie_note: str = ""  # how a tie on the metric was broken, when there was one
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per trial, best first
    pareto: list[dict[str, Any]] = field(default_factory=list)  # search.objectives: the front, best search.metric first
    pick_line: str = ""  # search.pick: which front member won, or a "warning: ..." line when none met the rule


def finish_sweep(
    cfg: ExperimentConfig,
    data: PreparedData,
    results: tune.ResultGrid,
    tracker: SweepTracker | UntrackedSweep,
    started: float,
    reevaluation: Reevaluation | None = None,
) -> SweepSummary:
    """Score the winner (the re-evaluated one when there is a re-evaluation) on the test split, log it,
    its manifest and the sweep's results, and close the parent run. Raises `outcomes.SweepFailed` (the parent
    run closed FAILED with the reasons) when no trial reported the metric."""
    metric, mode = cfg.search.metric, cfg.search.mode
    failures = {_trial_id(r): error_line(r.error) for r in results if r.error is not None}
    if not kept_checkpoint(scored_trials(results, metric)):
        end_without_winner(cfg, results, tracker, started, failures)
    front = pareto_trials(cfg, results) if cfg.search.objectives else []
    best_kept = pick_winner(kept_checkpoint(results), metric, mode)
    choice = front_winner(cfg, results, front, best_kept)  # search.pick: a front member
    winner = choice.winner
    best = reevaluation.best if reevaluation else winner.result
    state = load_checkpoint_state(
        winner.checkpoint if best is winner.result else best.get_best_checkpoint(metric, mode)
    )
    best_cfg = apply_params(cfg, best.config)
    prepared = data.for_config(best_cfg.data)  # the winner's own scaling, missing and encoding choice
    if best_cfg.data.validation == "cv":
        state |= refit_on_holdout(best_cfg, prepared, int(state["epoch"]))
    best_value = float(state["metrics"][metric])
    model, setting = model_from_state(state), window_setting(best_cfg)
    scores = _scores(model, prepared, setting)
    test = {f"test_{k}": v for k, v in scores["test"].items()}
    comparison = compare_to_baselines(cfg, prepared, setting, scores)
    record = SweepRecord.from_results(cfg, results, data, comparison.scores, best_baseline=comparison.best("val"))
    if prepared.task == "forecast":
        _log_forecasts(tracker, record, model, prepared, setting)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the report draws while the winner is logged
        logged = pool.submit(log_results, tracker, record, results)
        lookback = best_cfg.data.lookback
        example = raw_example(cfg.data.source, state["preprocessing"], lookback)
        tracker.log_model(model, example, state["preprocessing"], lookback, register=not choice.missed)
        logged.result()
    elapsed = time.monotonic() - started
    compute = sum(float(r.metrics.get("time_total_s", 0.0)) for r in results)
    tracker.log_json(build_manifest(cfg, prepared, dict(best.config), reevaluation), "manifest.json")
    if front:
        tracker.log_pareto(front, objective_pairs(cfg))
    extra = (reevaluation.metrics() if reevaluation else {}) | comparison.metrics()
    tracker.finish(
        test | extra | {f"best_{metric}": best_value, "sweep_seconds": elapsed, "trial_compute_seconds": compute},
        {TAG_BEST_TRIAL_ID: str(best.metrics.get("trial_id")), TAG_BEST_BASELINE: comparison.best("val")},
    )
    return SweepSummary(
        name=cfg.name,
        metric=metric,
        mode=mode,
        best_params=dict(best.config),
        best_value=best_value,
        test_metrics=test,
        counts=dict(tracker.callback.outcome_counts),
        parent_run_id=tracker.parent_run_id,
        model_uri=tracker.model_uri,  # "" when MLflow was unreachable: the model waits in the spilled writes
        storage_path=results.experiment_path,
        elapsed_s=elapsed,
        failures=failures,
        reevaluation=reevaluation,
        comparison=comparison,
        tie_note="" if reevaluation else winner.note,
        leaderboard=record.leaderboard(),
        pareto=front,
        pick_line=choice.line,
    )


def pareto_trials(cfg: ExperimentConfig, results: tune.ResultGrid) -> list[dict[str, Any]]:
    """The trials on the Pareto front of search.objectives, best search.metric first: each one's trial id, params
    and objectives at its best epoch of search.metric (the checkpoint the sweep keeps)."""
    metric, mode = cfg.search.metric, cfg.search.mode
    rows = []
    for result in scored_trials(results, metric):
        frame, scores = result.metrics_dataframe, result.metrics_dataframe[metric].dropna()
        if scores.empty:
            continue
        best = frame.loc[scores.idxmin() if mode == "min" else scores.idxmax()]
        values = {m: float(best[m]) for m, _ in objective_pairs(cfg) if m in best}
        epochs = int(best.get("training_iteration", 0))
        rows.append({"trial_id": _trial_id(result), "epoch": epochs, **values, "params": dict(result.config)})
    front = [rows[i] for i in pareto_front(rows, objective_pairs(cfg))]
    return sorted(front, key=lambda row: row.get(metric, math.nan) * (1 if mode == "min" else -1))


def kept_checkpoint(results: Any) -> list[tune.Result]:
    """The trials with a checkpoint: a stopper's stop_all (search.stop reached) can end a trial whose first result
    Tune took but whose checkpoint it never registered; such a trial cannot win."""
    return [r for r in results if r.best_checkpoints]


def scored_trials(results: tune.ResultGrid, metric: str) -> list[tune.Result]:
    """The trials that reported `metric` at least once."""
    return [r for r in results if r.metrics_dataframe is not None and metric in r.metrics_dataframe]


def end_without_winner(
    cfg: ExperimentConfig,
    results: tune.ResultGrid,
    tracker: SweepTracker | UntrackedSweep,
    started: float,
    failures: dict[str, str],
) -> NoReturn:
    """Close the parent run of a sweep no trial of which reported the metric FAILED, its `lstm_ray.error` tag and
    FAILURES_ARTIFACT saying why (each distinct reason with the trials it hit), and raise `outcomes.SweepFailed`
    with a summary of the sweep for the CLI's closing lines."""
    unreported = {_trial_id(r): no_report_reason(cfg) for r in results if r.error is None}
    reasons = outcomes.reasons_by_trial(failures | unreported)
    lines = outcomes.reason_lines(reasons)
    elapsed = time.monotonic() - started
    tracker.log_text("\n".join(lines) + "\n", FAILURES_ARTIFACT)
    tag = one_line(f"no trial reported {cfg.search.metric}: {'; '.join(lines)}", TAG_LIMIT)
    tracker.finish({"sweep_seconds": elapsed}, {TAG_ERROR: tag}, status="FAILED")
    summary = SweepSummary(
        name=cfg.name,
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        best_params={},
        best_value=math.nan,
        test_metrics={},
        counts=dict(tracker.callback.outcome_counts),
        parent_run_id=tracker.parent_run_id,
        model_uri="",
        storage_path=results.experiment_path,
        elapsed_s=elapsed,
        failures=failures,
    )
    raise outcomes.SweepFailed(reasons, summary, cfg.tracking.uri)


def no_report_reason(cfg: ExperimentConfig) -> str:
    """Why a trial that did not fail reported nothing: the time budget ended it before its first epoch did."""
    if cfg.search.time_budget is not None:
        return (
            f"search.time_budget {cfg.search.time_budget!r} ran out before the trial finished its first epoch; "
            "raise search.time_budget or make an epoch cheaper (a larger data.stride, a smaller model.hidden_size)"
        )
    return f"ended before its first epoch reported {cfg.search.metric}"


def _trial_id(result: tune.Result) -> str:
    return str(result.metrics.get("trial_id") or result.path.rsplit("/", 1)[-1])


def _scores(model: Any, data: PreparedData, setting: WindowSetting) -> dict[str, dict[str, float]]:
    """The winner's metrics on the validation and test windows of its own setting: {"val": ..., "test": ...}."""
    return {
        split: evaluate(model, data.windows(setting)[split], data.inverse_targets, _cpu(), naive_mae=data.naive_mae)
        for split in ("val", "test")
    }


def _log_forecasts(
    tracker: SweepTracker | UntrackedSweep, record: SweepRecord, model: Any, data: PreparedData, setting: WindowSetting
) -> None:
    """The winner's and the best baseline's test forecasts beside the actual values: into the report's record and
    onto the parent run as FORECAST_ARTIFACT."""
    predicted = data.inverse_targets(predict(model, data.windows(setting)["test"], _cpu()))
    record.forecast = forecast_frame(data, setting, predicted, record.best_baseline)
    tracker.log_text(record.forecast.to_csv(index=False), FORECAST_ARTIFACT)


def log_results(tracker: SweepTracker | UntrackedSweep, record: SweepRecord, results: tune.ResultGrid) -> None:
    """Write the report where the tracker uploads it from (when it wants one), then queue it with the leaderboard
    and the checkpoints."""
    folder = tracker.report_folder()
    report = write_report(record, folder).parent if folder is not None else None
    tracker.log_results(record, results, report)


@contextlib.contextmanager
def closed_on_failure(tracker: SweepTracker | UntrackedSweep) -> Iterator[None]:
    """Close the sweep's parent run when the block raises (`close_failed`), then let the error go on."""
    try:
        yield
    except BaseException as err:
        close_failed(tracker, err)
        raise


def close_failed(tracker: SweepTracker | UntrackedSweep, err: BaseException) -> None:
    """End the parent run of a sweep that `err` stopped: KILLED for Ctrl-C (KeyboardInterrupt: `lstm-ray resume`
    continues it), else FAILED; `lstm_ray.error` says why. Nothing happens to a run already closed."""
    interrupted = isinstance(err, KeyboardInterrupt)
    reason = INTERRUPTED if interrupted else error_line(err)
    tracker.finish({}, {TAG_ERROR: reason}, status="KILLED" if interrupted else "FAILED")


def error_line(error: BaseException) -> str:
    """The line of an error's text (often a trial's whole traceback) that says what went wrong; its type name
    when it has no text."""
    return outcomes.failure_summary(str(error)) if str(error).strip() else type(error).__name__


def _cpu() -> Any:
    import torch

    return torch.device("cpu")
