"""A real sweep: local Ray, HyperOpt + ASHA, a temporary SQLite MLflow store. No mocks."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from lstm_ray.config import parse_config
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.train.transfer import load_network

pytestmark = pytest.mark.slow


@pytest.fixture
def sweep_config(tiny_raw, tmp_path):
    tiny_raw["train"]["max_epochs"] = 4
    tiny_raw["train"]["batch_size"] = 16
    tiny_raw["search"] = {
        "algorithm": "hyperopt",
        "scheduler": "asha",
        "num_samples": 8,
        "grace_period": 1,  # rungs at epochs 1 and 2
        "reduction_factor": 2,
        "n_initial_points": 2,
        "space": {
            "model.hidden_size": {"choice": [4, 8]},
            "train.lr": {"choice": [0.003, 0.01, 0.03, 10.0]},
        },
        # lr 10 with plain SGD, batch 16 and no clipping turns NaN in epoch 1:
        # that trial must fail without harming the rest.
        "points_to_evaluate": [{"model.hidden_size": 8, "train.lr": 10.0}],
    }
    tiny_raw["train"]["optimizer"] = "sgd"
    tiny_raw["train"]["grad_clip"] = 0.0
    tiny_raw["data"]["window_norm"] = "none"  # the per-window norm keeps lr 10 from diverging
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "sweep-test"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    return parse_config(tiny_raw)


@pytest.fixture
def finished_sweep(sweep_config, local_ray):
    summary = run_sweep(sweep_config, config_text="name: tiny\n")
    client = MlflowClient(sweep_config.tracking.uri)
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id])
    return summary, client, runs


def test_sweep_logs_one_parent_with_a_child_per_trial(finished_sweep):
    summary, client, runs = finished_sweep
    parents = [r for r in runs if r.data.tags.get("lstm_ray.role") == "sweep"]
    assert len(parents) == 1 and parents[0].info.run_id == summary.parent_run_id
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8 == len(runs) - 1
    assert parent.info.status == "FINISHED"
    assert (
        parent.data.metrics["trials_completed"]
        + parent.data.metrics["trials_stopped_early"]
        + parent.data.metrics["trials_failed"]
        == 8
    )
    assert "test_rmse" in parent.data.metrics and parent.data.params["search.algorithm"] == "hyperopt"


def test_children_carry_exactly_their_hyperparameters_and_epoch_steps(finished_sweep):
    _, client, runs = finished_sweep
    children = [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]
    for child in children:
        assert set(child.data.params) == {"model.hidden_size", "train.lr"}
        assert not {"pid", "timestamp", "time_total_s", "training_iteration"} & set(child.data.metrics)
        if child.data.tags["lstm_ray.outcome"] == "failed":
            continue
        history = client.get_metric_history(child.info.run_id, "val_rmse")
        epochs = int(child.data.tags["lstm_ray.epochs"])
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))


def test_asha_stopped_some_trials_which_end_finished_with_their_outcome_tag(finished_sweep):
    summary, client, runs = finished_sweep
    children = [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]
    stopped = [r for r in children if r.data.tags["lstm_ray.outcome"] == "stopped_early"]
    assert stopped, "ASHA stopped no trial"
    # FINISHED, not the UI's red KILLED: stopping a poor trial is the plan; the tag keeps it queryable.
    assert all(r.info.status == "FINISHED" and int(r.data.tags["lstm_ray.epochs"]) < 4 for r in stopped)
    queried = client.search_runs([runs[0].info.experiment_id], "tags.`lstm_ray.outcome` = 'stopped_early'")
    assert {r.info.run_id for r in queried} == {r.info.run_id for r in stopped}
    completed = [r for r in children if r.data.tags["lstm_ray.outcome"] == "completed"]
    assert all(r.info.status == "FINISHED" for r in completed)
    assert summary.counts["stopped_early"] == len(stopped)


def test_diverging_trial_fails_with_its_reason_and_the_sweep_goes_on(finished_sweep):
    summary, _, runs = finished_sweep
    children = [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]
    failed = [r for r in children if r.data.tags["lstm_ray.outcome"] == "failed"]
    diverging = [r for r in children if float(r.data.params["train.lr"]) == 10.0]
    assert diverging, "the searcher never proposed the diverging learning rate"
    assert failed == diverging or {r.info.run_id for r in failed} == {r.info.run_id for r in diverging}
    for run in failed:
        assert run.info.status == "FAILED"
        assert "DivergedError" in run.data.tags["lstm_ray.stop_reason"]
    assert summary.best_params["train.lr"] != 10.0 and np.isfinite(summary.best_value)


def test_logged_best_model_loads_and_predicts(finished_sweep, sweep_config):
    summary, _, _ = finished_sweep
    mlflow.set_tracking_uri(sweep_config.tracking.uri)
    model = load_network(summary.model_uri)
    for batch in (1, 7):
        out = model(torch.zeros(batch, sweep_config.data.lookback, 1))
        assert out.shape == (batch, sweep_config.data.horizon, 1) and torch.isfinite(out).all()
    assert np.isfinite(summary.test_metrics["test_rmse"])


@pytest.mark.parametrize("tensorboard", [False, True])
def test_trials_write_tunes_result_files_and_tensorboard_events_only_when_asked(
    tiny_raw, tmp_path, local_ray, tensorboard
):
    tiny_raw["tracking"] = {"enabled": False}
    tiny_raw["storage"] = {"path": str(tmp_path / "results"), "tensorboard": tensorboard}
    summary = run_sweep(parse_config(tiny_raw), config_text="name: tiny\n")
    trial_folders = [p for p in Path(summary.storage_path).iterdir() if p.is_dir()]
    assert len(trial_folders) == 2
    for folder in trial_folders:
        # ExperimentAnalysis (resume, the results' dataframes) reads these two.
        assert (folder / "progress.csv").stat().st_size and (folder / "result.json").stat().st_size
        events = [p for p in folder.glob("events.out.tfevents.*") if p.stat().st_size]
        assert bool(events) == tensorboard
