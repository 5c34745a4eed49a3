"""Real sweeps over data settings: local Ray, a temporary SQLite MLflow store, no mocks."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_dataset, prepare_sweep_data, window_settings
from lstm_ray.data.windows import WindowSetting, window_setting
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.train.training import evaluate
from lstm_ray.train.transfer import load_network

pytestmark = pytest.mark.slow


def children(cfg) -> list:
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]


def test_sweep_with_lookback_in_the_search_space(tiny_raw, tmp_path, local_ray):
    tiny_raw["search"] = {"algorithm": "grid", "scheduler": "fifo", "num_samples": 1}
    tiny_raw["search"]["space"] = {"data.lookback": {"grid": [4, 12]}}
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "lookback"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    cfg = parse_config(tiny_raw)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    assert set(data.by_setting) == {WindowSetting(4, 2, 1), WindowSetting(12, 2, 1)}  # built once, before Ray
    summary = run_sweep(cfg, config_text="name: tiny\n", data=data)
    runs = children(cfg)
    assert sorted(int(r.data.params["data.lookback"]) for r in runs) == [4, 12]
    assert all(r.data.tags["lstm_ray.outcome"] == "completed" for r in runs)
    assert summary.best_params["data.lookback"] in (4, 12) and np.isfinite(summary.test_metrics["test_rmse"])


def test_classification_sweep_on_the_bundled_set(tiny_raw, tmp_path, local_ray):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    tiny_raw["search"] = {
        "algorithm": "random",
        "scheduler": "fifo",
        "num_samples": 2,
        "metric": "val_accuracy",
        "mode": "max",
        "space": {"model.hidden_size": {"choice": [4, 8]}},
    }
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "vowels"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    cfg = parse_config(tiny_raw)
    summary = run_sweep(cfg, config_text="name: tiny\n")
    runs = children(cfg)
    assert len(runs) == 2 and all(r.data.tags["lstm_ray.outcome"] == "completed" for r in runs)
    assert all(0.0 <= r.data.metrics["val_accuracy"] <= 1.0 for r in runs)
    assert 0.0 <= summary.test_metrics["test_accuracy"] <= 1.0


def test_cross_validated_sweep_reports_the_fold_mean_and_spread(tiny_raw, tmp_path, local_ray):
    tiny_raw["data"] |= {"validation": "cv", "folds": 3}
    tiny_raw["search"] = {"algorithm": "random", "scheduler": "asha", "num_samples": 2, "grace_period": 1}
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "cv"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    cfg = parse_config(tiny_raw)
    summary = run_sweep(cfg, config_text="name: tiny\n")
    for run in children(cfg):
        assert np.isfinite(run.data.metrics["val_rmse"]) and run.data.metrics["val_rmse_std"] >= 0.0
    # The shipped model is refit on the holdout split, whose scaler the test split and the logged model use:
    # not the last fold's model, which saw another scaler.
    mlflow.set_tracking_uri(cfg.tracking.uri)
    shipped = load_network(summary.model_uri)
    folds_last = [torch.load(p, weights_only=True)["model"] for p in (tmp_path / "results").rglob("checkpoint.pt")]
    weights = shipped.state_dict()
    assert all(any(not torch.equal(weights[k], state[k]) for k in weights) for state in folds_last)
    data = prepare_sweep_data(cfg)
    test = evaluate(shipped, data.windows(window_setting(cfg))["test"], data.inverse_targets, torch.device("cpu"))
    assert test["rmse"] == pytest.approx(summary.test_metrics["test_rmse"], rel=1e-5)


def test_sweep_with_scaling_in_the_search_space_trains_each_trial_on_its_choice(tiny_raw, tmp_path, local_ray):
    tiny_raw["search"] = {"algorithm": "grid", "scheduler": "fifo", "num_samples": 1}
    tiny_raw["search"]["space"] = {"data.scaling": {"grid": ["standard", "robust"]}}
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "scaling"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    cfg = parse_config(tiny_raw)
    data = prepare_sweep_data(cfg)
    assert sorted(k[0] for k in [data.prepared_key, *data.variants]) == ["robust", "standard"]
    run_sweep(cfg, config_text="name: tiny\n", data=data)
    checkpoints = [torch.load(path, weights_only=True) for path in (tmp_path / "results").rglob("checkpoint.pt")]
    kinds = {state["config"]["data"]["scaling"] for state in checkpoints}
    assert kinds == {"standard", "robust"}
    for state in checkpoints:
        assert state["preprocessing"]["scaler"]["kind"] == state["config"]["data"]["scaling"]
