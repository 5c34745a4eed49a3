from __future__ import annotations

import numpy as np
import pytest

from lstm_ray.data.preprocess import Scaler, fill_missing
from lstm_ray.errors import DataError

NAN = np.nan


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def test_interpolate_fills_linearly_and_holds_the_ends():
    assert fill_missing(column(NAN, 1, NAN, 3, NAN), "interpolate", ["y"])[:, 0].tolist() == [1, 1, 2, 3, 3]


def test_ffill_carries_the_last_value_and_backfills_a_leading_gap():
    assert fill_missing(column(NAN, 2, NAN, NAN, 5), "ffill", ["y"])[:, 0].tolist() == [2, 2, 2, 2, 5]


def test_filling_stays_inside_each_segment():
    values = column(1, NAN, NAN, 7)
    filled = fill_missing(values, "interpolate", ["y"], segments=[(0, 2), (2, 4)])
    assert filled[:, 0].tolist() == [1, 1, 7, 7]  # not 1, 3, 5, 7: no value crosses from one split to another


@pytest.mark.parametrize("how", ["mask", "drop"])
def test_mask_and_drop_leave_gaps_for_later_steps(how):
    assert np.isnan(fill_missing(column(1, NAN, 3), how, ["y"])[1, 0])


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


def test_robust_scaler_centres_on_the_median_and_divides_by_the_iqr():
    scaler = Scaler.fit("robust", column(1, 2, 3, 4, 100))  # q25 2, median 3, q75 4: the outlier does not count
    assert scaler.shift.tolist() == [3.0] and scaler.scale.tolist() == [2.0]
    assert scaler.transform(column(3, 5))[:, 0].tolist() == [0.0, 1.0]


def test_none_scaling_is_the_identity():
    scaler = Scaler.fit("none", column(10, 20))
    assert scaler.transform(column(10, 20))[:, 0].tolist() == [10.0, 20.0]


def test_statistics_ignore_gaps_and_unscaled_columns_stay_as_they_are():
    train = np.array([[1.0, 0.0], [NAN, 1.0], [3.0, 1.0]])
    scaler = Scaler.fit("standard", train, scaled=[True, False])
    assert scaler.shift.tolist() == [2.0, 0.0] and scaler.scale.tolist() == [1.0, 1.0]
