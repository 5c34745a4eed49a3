"""Naive baselines and MASE's scale against values computed by hand; filled targets are not scored."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pytest

from lstm_ray.config import parse_config
from lstm_ray.data.baselines import baseline_forecasts, baseline_probabilities, naive_mae
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.data.windows import WindowSetting
from lstm_ray.errors import DataError
from lstm_ray.train.metrics import baseline_scores, forecast_metrics

SQUARES = (np.arange(40, dtype=float) ** 2) / 10  # a curving series: every baseline differs from the others


def write(tmp_path, values, times=None, name="series.csv") -> str:
    times = times if times is not None else [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(len(values))]
    path = tmp_path / name
    pv.write_csv(pa.table({"month": times, "y": pa.array(values, pa.float64())}), path)
    return str(path)


def prepared(source: str, **data):
    section = {"source": source, "target": "y", "time_column": "month", "lookback": 4, "horizon": 2} | data
    return prepare_dataset(parse_config({"name": "b", "data": section}).data)


def test_forecast_baselines_match_hand_computed_values(tmp_path):
    data = prepared(write(tmp_path, SQUARES), season_length=3)
    setting = WindowSetting(4, 2, 1)
    start = int(data.windows(setting)["test"].starts[0])
    forecasts = baseline_forecasts(data, setting, "test")
    y = SQUARES
    assert forecasts["last_value"][0, :, 0] == pytest.approx([y[start - 1]] * 2)
    assert forecasts["seasonal"][0, :, 0] == pytest.approx([y[start - 3], y[start - 2]])  # one season back
    slope = (y[start - 1] - y[start - 4]) / 3  # mean change over the lookback of 4 rows
    assert forecasts["drift"][0, :, 0] == pytest.approx([y[start - 1] + slope, y[start - 1] + 2 * slope])


def test_a_horizon_longer_than_the_season_looks_back_whole_seasons(tmp_path):
    data = prepared(write(tmp_path, SQUARES), season_length=2, horizon=5)
    forecasts = baseline_forecasts(data, WindowSetting(4, 5, 1), "val")
    start = int(data.windows(WindowSetting(4, 5, 1))["val"].starts[0])
    expected = [SQUARES[start + h - 2 * ((h + 2) // 2)] for h in range(5)]
    assert forecasts["seasonal"][0, :, 0] == pytest.approx(expected)


def test_the_season_comes_from_monthly_times_and_is_skipped_without_enough_history(tmp_path):
    data = prepared(write(tmp_path, SQUARES))
    assert data.season_length == 12
    assert "seasonal" in baseline_forecasts(data, WindowSetting(4, 2, 1), "test")
    numeric = prepared(write(tmp_path, SQUARES, times=list(range(40)), name="numeric.csv"))
    assert numeric.season_length == 0
    assert set(baseline_forecasts(numeric, WindowSetting(4, 2, 1), "val")) == {"last_value", "drift"}
    long_season = prepared(write(tmp_path, SQUARES), season_length=35)
    assert "seasonal" not in baseline_forecasts(long_season, WindowSetting(4, 2, 1), "val")


def test_mase_scale_is_the_training_mae_of_the_seasonal_naive_forecast():
    history = np.array([[1.0], [3.0], [2.0], [6.0], [4.0], [9.0], [100.0]])
    observed = np.ones_like(history, dtype=bool)
    codes = np.array([0, 0, 0, 0, 0, 0, 1])  # the last row is validation: not used
    assert naive_mae(history, observed, codes, np.array([0, 7]), season_length=2)[0] == pytest.approx(
        (1 + 3 + 2 + 3) / 4
    )
    assert naive_mae(history, observed, codes, np.array([0, 7]))[0] == pytest.approx((2 + 1 + 4 + 2 + 5) / 5)
    observed[3] = False  # a filled value takes no part in either pair it belongs to
    assert naive_mae(history, observed, codes, np.array([0, 7]))[0] == pytest.approx((2 + 1 + 5) / 3)


def test_mase_divides_each_targets_mae_by_its_scale():
    actual = np.zeros((2, 1, 2))
    predicted = np.array([[[1.0, 4.0]], [[3.0, 8.0]]])
    scores = forecast_metrics(predicted, actual, naive_mae=np.array([2.0, 3.0]))
    assert scores["mase"] == pytest.approx(((2 / 2) + (6 / 3)) / 2)


def test_filled_targets_are_not_scored(tmp_path):
    values = SQUARES.copy()
    values[[33, 36]] = np.nan  # gaps in the validation and test rows, filled by interpolation
    data = prepared(write(tmp_path, values), missing="interpolate")
    setting = WindowSetting(4, 2, 1)
    scores = baseline_scores(data, setting)
    for split in ("val", "test"):
        windows = data.windows(setting)[split]
        assert windows.mask is not None and not windows.mask.all()
        rows = windows.starts[:, None] + np.arange(2)
        last = values[windows.starts - 1]
        last = np.where(np.isnan(last), data.history[windows.starts - 1, 0], last)  # a filled input is still read
        error = (last[:, None] - values[rows])[~np.isnan(values[rows])]
        assert scores[f"last_value.{split}_rmse"] == pytest.approx(np.sqrt(np.mean(error**2)))


def test_classify_baselines_are_the_majority_class_and_the_training_prior():
    section = {"source": "builtin:japanese_vowels", "task": "classify"}
    data = prepare_dataset(
        parse_config({"name": "c", "data": section, "search": {"metric": "val_accuracy", "mode": "max"}}).data
    )
    counts = np.asarray(data.class_counts()["train"], dtype=float)
    probabilities = baseline_probabilities(data, "test")
    assert probabilities["majority"].argmax(axis=1).tolist() == [counts.argmax()] * len(probabilities["majority"])
    assert probabilities["prior"][0] == pytest.approx(counts / counts.sum())
    scores = baseline_scores(data, WindowSetting(0, 0, 0))
    test_labels = data.labels[data.codes == 2]
    assert scores["majority.test_accuracy"] == pytest.approx(np.mean(test_labels == counts.argmax()))
    assert scores["prior.test_auc"] == pytest.approx(0.5)
    assert "majority.test_loss" not in scores


def test_log_transform_needs_positive_targets(tmp_path):
    values = SQUARES.copy()  # starts at 0
    with pytest.raises(DataError) as err:
        prepared(write(tmp_path, values), target_transform="log")
    assert err.value.key == "data.target_transform" and "needs positive targets" in str(err.value)
    data = prepared(write(tmp_path, values + 1), target_transform="log")
    windows = data.windows(WindowSetting(4, 2, 1))["test"]
    assert data.inverse_targets(windows.y)[:, :, 0] == pytest.approx(values[windows.starts[:, None] + np.arange(2)] + 1)
