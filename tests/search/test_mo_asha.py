"""MO-ASHA on synthetic objectives: at a rung a dominated trial is stopped and a front trial is not, where plain
ASHA would stop the small model; the same in a real Tune run with a trainable that reports fixed objectives;
and a real small multi-objective sweep whose front reaches MLflow."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from tune_runs import tiny

from lstm_ray.cli import print_summary
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.search.mo_asha import MultiObjectiveASHA
from lstm_ray.search.mo_optuna import MultiObjectiveOptunaSearch
from lstm_ray.search.pareto import dominates, oriented, pareto_front
from lstm_ray.sweep.tuning import build_searcher, build_tuner, prepare_tune, run_sweep, tune_settings

OBJECTIVES = [("val_rmse", "min"), ("model_parameters", "min")]
LARGE = {"val_rmse": 0.10, "model_parameters": 50_000.0}  # most accurate
SMALL = {"val_rmse": 0.30, "model_parameters": 500.0}  # smallest: on the front beside LARGE
WORSE = {"val_rmse": 0.35, "model_parameters": 50_000.0}  # LARGE beats it on both


def _scheduler(**kwargs):
    return MultiObjectiveASHA(
        OBJECTIVES, time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2, **kwargs
    )


def _arrive(scheduler, results):
    """Each result reaches the first rung (epoch 1) in order; returns the scheduler's decisions."""
    decisions = []
    for k, result in enumerate(results):
        trial = SimpleNamespace(trial_id=f"t{k}")
        scheduler.on_trial_add(None, trial)
        decisions.append(scheduler.on_trial_result(None, trial, {"training_iteration": 1, **result}))
    return decisions


def test_a_small_model_stays_and_a_dominated_one_stops_at_the_rung():
    assert _arrive(_scheduler(), [LARGE, SMALL, WORSE]) == ["CONTINUE", "CONTINUE", "STOP"]


def test_plain_asha_would_stop_the_small_model():
    asha = ASHAScheduler(
        metric="val_rmse", mode="min", time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2
    )
    assert _arrive(asha, [LARGE, SMALL])[1] == TrialScheduler.STOP


objective = st.sampled_from([0.1, 0.2, 0.3, 0.5, 1.0])
arrivals = st.lists(st.fixed_dictionaries({m: objective for m, _ in OBJECTIVES}), min_size=1, max_size=12)


@given(arrivals)
def test_rung_decisions_keep_the_front_and_stop_what_enough_trials_dominate(results):
    decisions = _arrive(_scheduler(), results)
    points = [oriented(r, OBJECTIVES) for r in results]
    for k, (point, decision) in enumerate(zip(points, decisions, strict=True)):
        beaten_by = sum(dominates(earlier, point) for earlier in points[:k])
        if beaten_by == 0:
            assert decision == TrialScheduler.CONTINUE  # on the rung's front so far
        elif beaten_by >= math.ceil((k + 1) / 2):
            assert decision == TrialScheduler.STOP  # more trials beat it everywhere than the rung keeps


def test_in_a_real_tune_run_only_the_dominated_trial_is_stopped(local_ray, tmp_path):
    cases = {"large": LARGE, "small": SMALL, "worse": WORSE}

    def trainable(config):
        for _ in range(4):
            tune.report(dict(cases[config["case"]]))

    results = tune.Tuner(
        trainable,
        param_space={"case": tune.grid_search(list(cases))},
        tune_config=tune.TuneConfig(metric="val_rmse", mode="min", scheduler=_scheduler(), max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="mo_asha", verbose=0),
    ).fit()
    epochs = {r.config["case"]: r.metrics["training_iteration"] for r in results}
    assert epochs == {"large": 4, "small": 4, "worse": 1}


def test_a_small_sweep_logs_its_pareto_front_and_tags_the_front_trials(local_ray, tmp_path, tiny_raw, capsys):
    cfg = tiny(
        tiny_raw,
        tmp_path,
        algorithm="random",
        scheduler="asha",
        num_samples=6,
        objectives=[{"metric": "val_rmse", "mode": "min"}, {"metric": "model_parameters", "mode": "min"}],
        space={"model.hidden_size": {"choice": [2, 4, 16]}, "train.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
    )
    summary = run_sweep(cfg, config_text="mo")
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_run(summary.parent_run_id).info.experiment_id
    children = [
        r for r in client.search_runs([experiment]) if r.data.tags.get("mlflow.parentRunId") == summary.parent_run_id
    ]
    logged = json.loads(
        Path(client.download_artifacts(summary.parent_run_id, "pareto.json", str(tmp_path))).read_text()
    )
    front = {row["trial_id"] for row in logged["front"]}
    assert front == {row["trial_id"] for row in summary.pareto} and front
    assert {r.data.tags["lstm_ray.trial_id"] for r in children if r.data.tags.get("lstm_ray.pareto") == "true"} == front
    # The front is exactly the non-dominated set of the trials' (best val_rmse, size), as MLflow recorded them.
    rows = [
        {"trial_id": r.data.tags["lstm_ray.trial_id"], "model_parameters": r.data.metrics["model_parameters"]}
        | {"val_rmse": min(m.value for m in client.get_metric_history(r.info.run_id, "val_rmse"))}
        for r in children
    ]
    assert {rows[i]["trial_id"] for i in pareto_front(rows, OBJECTIVES)} == front
    assert all(row["model_parameters"] > 0 for row in logged["front"])
    capsys.readouterr()
    print_summary(summary, cfg.tracking.uri)  # the CLI's closing lines: one per front trial
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split(":")[0].strip() for line in lines if "model_parameters = " in line) == sorted(front)


def test_optuna_searches_several_objectives_and_is_told_only_full_trials(local_ray, tmp_path, tiny_raw):
    cfg = tiny(
        tiny_raw,
        tmp_path,
        algorithm="optuna",
        num_samples=5,
        objectives=[{"metric": "val_rmse", "mode": "min"}, {"metric": "latency_ms", "mode": "min"}],
        space={"model.hidden_size": {"choice": [2, 4, 16]}, "train.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
    )
    searcher = build_searcher(cfg)
    assert isinstance(searcher, MultiObjectiveOptunaSearch)
    data = prepare_sweep_data(cfg)
    slots = prepare_tune(cfg, None, False)
    tuner = build_tuner(cfg, data, searcher=searcher, slots=slots, name="mo_optuna", callbacks=[])
    with tune_settings(slots, verbose=False):
        results = tuner.fit()
    study = searcher._ot_study
    assert len(study.directions) == 2
    told = {t.number: t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}
    full = [r for r in results if r.metrics["training_iteration"] >= cfg.train.max_epochs]
    complete = [t for t in told.values() if t.state.name == "COMPLETE"]
    assert len(told) == 5 and len(complete) == len(full) >= 1
    assert all(len(t.values) == 2 and t.values[1] > 0 for t in complete)  # (best val_rmse, latency_ms)
