from __future__ import annotations

import numpy as np
import pytest

from lstm_ray.data.preprocess import Scaler, fill_missing
from lstm_ray.errors import DataError

NAN = np.nan


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def test_interpolate_fills_linearly():
    assert fill_missing(column(1, NAN, 3), "interpolate", ["y"])[:, 0].tolist() == [1, 2, 3]


def test_ffill_carries_the_last_value_and_backfills_a_leading_gap():
    assert fill_missing(column(NAN, 2, NAN, NAN, 5), "ffill", ["y"])[:, 0].tolist() == [2, 2, 2, 2, 5]


def test_drop_removes_rows_with_any_gap():
    values = np.array([[1, 2], [NAN, 3], [4, 5]])
    assert fill_missing(values, "drop", ["a", "b"]).tolist() == [[1, 2], [4, 5]]


def test_error_mode_counts_the_rows():
    with pytest.raises(DataError, match="1 rows have missing values"):
        fill_missing(column(1, NAN, 3), "error", ["y"])


def test_all_nan_column_is_named():
    with pytest.raises(DataError, match="column 'y' has no values"):
        fill_missing(column(NAN, NAN), "interpolate", ["y"])


def test_standard_scaler_round_trips_and_survives_constant_columns():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = Scaler.fit("standard", train)
    scaled = scaler.transform(train)
    assert scaled[:, 0].tolist() == [-1.0, 1.0] and scaled[:, 1].tolist() == [0.0, 0.0]
    assert np.allclose(scaler.inverse(scaled), train)
    assert np.allclose(Scaler.from_state(scaler.state()).transform(train), scaled)


def test_minmax_scaler_maps_train_range_to_unit_interval():
    scaler = Scaler.fit("minmax", column(2, 4, 6))
    assert scaler.transform(column(2, 6))[:, 0].tolist() == [0.0, 1.0]
