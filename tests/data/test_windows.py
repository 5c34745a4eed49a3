from __future__ import annotations

import numpy as np
import pytest

from lstm_ray.data.windows import WindowSetting, check_enough_rows, make_windows, split_bounds
from lstm_ray.errors import DataError


def test_splits_are_chronological_and_cover_every_row():
    bounds = split_bounds(100, 0.15, 0.15)
    assert bounds == {"train": (0, 70), "val": (70, 85), "test": (85, 100)}


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


def test_too_few_rows_names_the_setting_to_change():
    bounds = split_bounds(40, 0.15, 0.15)
    with pytest.raises(DataError, match="lower data.lookback"):
        check_enough_rows(40, bounds, WindowSetting(30, 1, 1))
