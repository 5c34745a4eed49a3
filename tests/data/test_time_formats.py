"""Time columns as data sets write them (year, month and quarter text, sub-second ISO) and the season they imply."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lstm_ray.data.features import FeatureSpec, encode_rows
from lstm_ray.data.layout import RowSpec, arrange_rows, seasonal_period
from lstm_ray.errors import DataError


def spec(**kw) -> RowSpec:
    return RowSpec(**({"task": "forecast", "targets": ["y"], "numeric": ["y"], "time_column": "t"} | kw))


def times_of(text: list[str]) -> list[str]:
    """The parsed times of a one-series table, in row order, as ISO text to the microsecond."""
    rows = arrange_rows(pa.table({"t": text, "y": np.arange(len(text), dtype=np.float64)}), spec())
    order = np.argsort(rows.values[:, 0])  # y is the original row number
    return [str(t) for t in rows.times[order].astype("datetime64[us]")]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        (["1960-12", "1961-01"], ["1960-12-01", "1961-01-01"]),
        (["1960/12", "1961/01"], ["1960-12-01", "1961-01-01"]),
        (["1960Q4", "1961Q1"], ["1960-10-01", "1961-01-01"]),
        (["1960-Q2", "1960-Q3"], ["1960-04-01", "1960-07-01"]),
        (["1960 Q1", "1960 q4"], ["1960-01-01", "1960-10-01"]),
        (["1960", "1961"], ["1960-01-01", "1961-01-01"]),
        ([" 1960-12 ", "1961Q1", "1962"], ["1960-12-01", "1961-01-01", "1962-01-01"]),
    ],
)
def test_period_text_reads_as_the_first_day_of_its_period(text, first):
    assert times_of(text) == [f"{day}T00:00:00.000000" for day in first]


def test_sub_second_iso_times_keep_their_fraction_and_zones_become_utc():
    text = [
        "2024-01-01T00:00:00.250",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.500Z",
        "2024-01-01T02:00:00.750+02:00",
    ]
    assert times_of(text) == [
        "2024-01-01T00:00:00.250000",
        "2024-01-01T00:00:00.000000",
        "2024-01-01T00:00:00.500000",
        "2024-01-01T00:00:00.750000",
    ]


def test_rows_250_ms_apart_are_distinct_and_not_a_gap():
    table = pa.table(
        {"t": [f"2024-01-01T00:00:0{s // 1000}.{s % 1000:03d}" for s in range(0, 2000, 250)], "y": np.arange(8.0)}
    )
    rows = arrange_rows(table, spec())
    assert len(rows) == 8 and rows.notes == []
    assert np.diff(rows.times).tolist() == [np.timedelta64(250, "ms")] * 7


def test_month_text_gives_the_right_calendar_month():
    table = pa.table({"t": ["1960-12", "1961-03"], "y": [1.0, 2.0]})
    encoded = encode_rows(arrange_rows(table, spec()), spec(), FeatureSpec(calendar=["month"]))
    month = np.arctan2(encoded.values[:, 1], encoded.values[:, 2]) % (2 * np.pi) * 12 / (2 * np.pi)
    assert np.allclose(month, [11, 2])  # December is 11, March is 2


@pytest.mark.parametrize("text", [["3 May", "4 May"], ["1960-13", "1961-01"], ["1960Q5", "1961Q1"], ["60", "61"]])
def test_other_text_is_refused_naming_the_key_and_the_accepted_forms(text):
    with pytest.raises(
        DataError, match=r"data.time_column: column 't' cannot be read as times .*2024-01, 2024Q1, 2024"
    ):
        arrange_rows(pa.table({"t": text, "y": [1.0, 2.0]}), spec())


def test_date_and_timestamp_columns_still_work_and_numbers_stay_numbers():
    days = pa.array(np.array(["2024-01-02", "2024-01-01"], dtype="datetime64[D]"))
    stamps = pa.array(
        np.array(["2024-01-01T00:00:01", "2024-01-01T00:00:00"], dtype="datetime64[s]"), pa.timestamp("s", "UTC")
    )
    assert str(arrange_rows(pa.table({"t": days, "y": [2.0, 1.0]}), spec()).times[0]) == "2024-01-01T00:00:00.000000"
    assert arrange_rows(pa.table({"t": stamps, "y": [2.0, 1.0]}), spec()).times.dtype == "datetime64[s]"
    assert arrange_rows(pa.table({"t": [1960, 1961], "y": [1.0, 2.0]}), spec()).times.dtype == np.int64
    assert arrange_rows(pa.table({"t": [1960.5, 1961.5], "y": [1.0, 2.0]}), spec()).times.dtype == np.float64


MONTHS = {"M": 1, "Q": 3, "Y": 12}  # steps counted in months


def series_rows(step: str, n: int = 12) -> pa.Table:
    """Two series of `n` rows each, one `step` apart: a numpy timedelta unit, or M / Q / Y (months, quarters,
    years). The second series starts a day after the first."""
    if step in MONTHS:
        times = (np.datetime64("2020-01", "M") + np.arange(n) * MONTHS[step]).astype("datetime64[s]")
    else:
        times = np.datetime64("2020-01-01", "s") + np.arange(n) * np.timedelta64(1, step)
    both = np.concatenate([times, times + np.timedelta64(1, "D")])
    return pa.table({"id": [1] * n + [2] * n, "t": both, "y": np.arange(2.0 * n)})


@pytest.mark.parametrize(("step", "season"), [("h", 24), ("D", 7), ("W", 52), ("M", 12), ("Q", 4), ("Y", 0), ("m", 0)])
def test_seasonal_period_follows_the_usual_step_within_series(step, season):
    rows = arrange_rows(series_rows(step), spec(id_column="id"))
    assert seasonal_period(rows.times, rows.offsets) == season


def test_seasonal_period_reads_through_gaps_and_is_zero_without_dates():
    days = np.datetime64("2020-01-01", "D") + np.array([0, 1, 2, 3, 10, 11, 12, 30])
    rows = arrange_rows(pa.table({"t": days, "y": np.arange(8.0)}), spec())
    assert seasonal_period(rows.times, rows.offsets) == 7
    numeric = arrange_rows(pa.table({"t": np.arange(30), "y": np.arange(30.0)}), spec())
    assert seasonal_period(numeric.times, numeric.offsets) == 0
    assert seasonal_period(None, np.array([0, 3])) == 0
