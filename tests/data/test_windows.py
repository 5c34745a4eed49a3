from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.data.windows import Windows, WindowSetting, forecast_windows, split_runs
from lstm_ray.errors import DataError


def make_windows(values, inputs, targets, bounds, setting, series_start=0, target_ok=None) -> Windows:
    """The windows of one run of rows `bounds` = (start, end) of a series starting at `series_start`."""
    return forecast_windows(values, inputs, targets, [(series_start, *bounds)], setting, target_ok)


def test_window_inputs_precede_targets_and_stay_aligned():
    values = np.arange(20, dtype=np.float32).reshape(-1, 1)
    w = make_windows(values, [0], [0], (0, 20), WindowSetting(lookback=3, horizon=2, stride=1))
    assert w.x.shape == (16, 3, 1) and w.y.shape == (16, 2, 1)
    assert w.x[0, :, 0].tolist() == [0, 1, 2] and w.y[0, :, 0].tolist() == [3, 4]
    assert w.x[-1, :, 0].tolist() == [15, 16, 17] and w.y[-1, :, 0].tolist() == [18, 19]


def test_validation_targets_lie_inside_their_split_but_inputs_may_look_back():
    values = np.arange(30, dtype=np.float32).reshape(-1, 1)
    w = make_windows(values, [0], [0], (20, 30), WindowSetting(4, 2, 1))
    assert w.y.min() >= 20 and w.y.max() <= 29
    assert w.x[0, :, 0].tolist() == [16, 17, 18, 19]


def test_stride_skips_windows():
    values = np.arange(20, dtype=np.float32).reshape(-1, 1)
    w = make_windows(values, [0], [0], (0, 20), WindowSetting(3, 1, 4))
    assert w.y[:, 0, 0].tolist() == [3, 7, 11, 15, 19]


def test_inputs_and_targets_can_be_different_columns():
    values = np.stack([np.arange(10), 100 + np.arange(10)], axis=1).astype(np.float32)
    w = make_windows(values, [0, 1], [1], (0, 10), WindowSetting(2, 1, 1))
    assert w.x.shape[-1] == 2 and w.y[0, 0, 0] == 102


def test_no_window_fitting_names_the_setting_to_change(tiny_config):
    values = np.arange(10, dtype=np.float32).reshape(-1, 1)
    assert len(make_windows(values, [0], [0], (0, 10), WindowSetting(10, 1, 1))) == 0
    with pytest.raises(DataError, match="lower data.lookback"):
        prepare_dataset(dataclasses.replace(tiny_config.data, lookback=5000))


def test_windows_never_look_back_into_another_series():
    values = np.arange(20, dtype=np.float32).reshape(-1, 1)  # two series: rows 0-9 and 10-19
    runs = split_runs(np.zeros(20, dtype=np.int64), np.array([0, 10, 20]))[0]
    w = forecast_windows(values, [0], [0], runs, WindowSetting(3, 1, 1))
    assert len(w) == 14  # 7 windows per series
    series_of = w.x[:, :, 0] // 10
    assert (series_of == (w.y[:, :, 0] // 10)).all()


def test_windows_with_an_unobserved_target_are_left_out():
    values = np.arange(10, dtype=np.float32).reshape(-1, 1)
    target_ok = np.ones(10, dtype=bool)
    target_ok[6] = False
    w = make_windows(values, [0], [0], (0, 10), WindowSetting(2, 2, 1), target_ok=target_ok)
    assert 6 not in w.y[:, :, 0]
    assert w.y[:, 0, 0].tolist() == [2, 3, 4, 7, 8]


def test_split_runs_cut_at_series_and_code_changes():
    codes = np.array([0, 0, 1, 2, 0, 1, 1, 2])
    runs = split_runs(codes, np.array([0, 4, 8]))
    assert runs == {0: [(0, 0, 2), (4, 4, 5)], 1: [(0, 2, 3), (4, 5, 7)], 2: [(0, 3, 4), (4, 7, 8)]}
