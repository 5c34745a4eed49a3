"""A real sweep on a trending series: its winner beats the naive baselines, and MLflow and the summary say so."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pyarrow.csv as pv
import pytest
import torch
from mlflow.tracking import MlflowClient

from lstm_ray.cli import print_summary
from lstm_ray.config import apply_params, parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.data.synthetic import trend_seasonal
from lstm_ray.data.windows import window_setting
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.train.transfer import load_network

pytestmark = pytest.mark.slow


def trending_config(folder, **search) -> dict:
    pv.write_csv(trend_seasonal(n_rows=700, slope=0.03, noise=0.2), folder / "trend.csv")
    return {
        "name": "trend",
        "data": {"source": str(folder / "trend.csv"), "target": "y", "time_column": "t", "lookback": 24},
        "model": {"hidden_size": 16},
        "train": {"max_epochs": 8, "batch_size": 32, "lr": 0.005},
        "search": {"algorithm": "grid", "scheduler": "fifo", "num_samples": 1} | search,
        "resources": {"cpu": 1},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "storage": {"path": str(folder / "results")},
    }


@pytest.fixture(scope="module")
def trending_sweep(tmp_path_factory, local_ray):
    folder = tmp_path_factory.mktemp("trend")
    space = {
        "data.window_norm": {"grid": ["standard", "last"]},
        "data.target_transform": {"grid": ["none", "log_diff"]},
    }
    cfg = parse_config(trending_config(folder, space=space))
    data = prepare_sweep_data(cfg)
    summary = run_sweep(cfg, config_text="name: trend\n", data=data)
    return cfg, data, summary, pd.read_csv(folder / "trend.csv")


def test_with_the_defaults_one_trial_beats_repeating_the_last_value_on_a_trend(tmp_path, local_ray):
    cfg = parse_config(trending_config(tmp_path, algorithm="random"))
    assert (cfg.data.window_norm, cfg.data.target_transform) == ("standard", "none")
    summary = run_sweep(cfg, config_text="name: trend\n")
    assert summary.test_metrics["test_rmse"] < 0.8 * summary.comparison.scores["last_value.test_rmse"]


def test_the_winner_beats_every_baseline_on_test_and_the_parent_run_records_it(trending_sweep):
    cfg, _, summary, _ = trending_sweep
    comparison = summary.comparison
    assert comparison.beats("val") and comparison.beats("test")
    assert summary.test_metrics["test_rmse"] < comparison.scores["last_value.test_rmse"]
    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(summary.parent_run_id)
    metrics = parent.data.metrics
    for name in ("last_value", "seasonal", "drift"):  # hourly times: a season of 24
        assert {f"baseline.{name}.{split}_{m}" for split in ("val", "test") for m in ("rmse", "mase")} <= set(metrics)
    best = parent.data.tags["lstm_ray.best_baseline"]
    assert metrics["test_rmse_vs_baseline"] == pytest.approx(
        summary.test_metrics["test_rmse"]
        / min(metrics[f"baseline.{n}.test_rmse"] for n in ("last_value", "seasonal", "drift"))
    )
    assert metrics["test_rmse_vs_baseline"] < 1 and metrics["val_rmse_vs_baseline"] < 1
    forecast = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=parent.info.run_id, artifact_path="forecast_test.csv", tracking_uri=cfg.tracking.uri
        )
    )
    assert list(forecast.columns) == ["window", "step", "target", "actual", "winner", "baseline"]
    assert np.sqrt(np.mean((forecast.winner - forecast.actual) ** 2)) == pytest.approx(
        summary.test_metrics["test_rmse"], rel=1e-4
    )
    assert np.sqrt(np.mean((forecast.baseline - forecast.actual) ** 2)) == pytest.approx(
        metrics[f"baseline.{best}.test_rmse"], rel=1e-4
    )
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 4 and all("val_mase" in run.data.metrics for run in trials)


def test_the_summary_prints_the_winner_beside_the_best_baseline(trending_sweep, capsys):
    cfg, _, summary, _ = trending_sweep
    print_summary(summary, cfg.tracking.uri)
    out = capsys.readouterr().out
    assert f"Against the naive baselines: winner test_rmse {summary.test_metrics['test_rmse']:.4g} = " in out
    assert "WARNING" not in out


def test_the_served_model_takes_raw_rows_and_answers_in_the_data_units(trending_sweep):
    cfg, data, summary, frame = trending_sweep
    best = apply_params(cfg, summary.best_params)
    prepared, setting = data.for_config(best.data), window_setting(best)
    windows = prepared.windows(setting)["test"]
    network = load_network(summary.model_uri)
    with torch.no_grad():
        expected = prepared.inverse_targets(network(torch.as_tensor(windows.x[:1])).numpy())[0, 0, 0]
    start = int(windows.starts[0])
    mlflow.set_tracking_uri(cfg.tracking.uri)
    served = mlflow.pyfunc.load_model(summary.model_uri)
    rows = frame.iloc[start - setting.lookback : start]  # times as text, as pd.read_csv gives them
    assert served.predict(rows)["y"].iloc[0] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - frame.y.iloc[start]) < 1.5  # a forecast near the level, not the training rows' scale
