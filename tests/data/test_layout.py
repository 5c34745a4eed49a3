"""Arranging raw rows: sorting per id and time, time parsing and its errors, gaps, drops, lags and differences."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lstm_ray.data.layout import RowSpec, arrange_rows
from lstm_ray.errors import DataError


def spec(**kw) -> RowSpec:
    base = {"task": "forecast", "targets": ["y"], "numeric": ["y"], "time_column": "t"}
    return RowSpec(**(base | kw))


def test_rows_are_sorted_by_time_within_each_id():
    table = pa.table({"id": ["b", "a", "b", "a"], "t": [2, 2, 1, 1], "y": [4.0, 2.0, 3.0, 1.0]})
    rows = arrange_rows(table, spec(id_column="id"))
    assert rows.values[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert rows.offsets.tolist() == [0, 2, 4] and rows.series_ids == ["a", "b"]


def test_iso_text_times_are_parsed_not_sorted_as_text():
    table = pa.table({"t": ["2020-01-10", "2020-01-09", "2020-01-11"], "y": [2.0, 1.0, 3.0]})
    rows = arrange_rows(table, spec())
    assert rows.values[:, 0].tolist() == [1.0, 2.0, 3.0] and rows.times.dtype == "datetime64[us]"


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (["3 May", "4 May"], "cannot be read as times"),
        ([[1], [2]], "cannot be ordered"),
        ([1, None], "1 missing values"),
        ([1, 1], "repeat a time within one series"),
    ],
)
def test_unsortable_time_columns_are_named(t, expected):
    table = pa.table({"t": t, "y": [1.0, 2.0]})
    with pytest.raises(DataError, match=f"data.time_column: .*{expected}"):
        arrange_rows(table, spec())


def test_gaps_in_time_are_reported():
    table = pa.table({"t": [0, 1, 2, 5, 6, 7, 20], "y": np.arange(7.0)})
    (note,) = arrange_rows(table, spec()).notes
    assert note.startswith("data.time_column: 2 gaps in 't' (usual step 1, longest 13)")


def test_regular_times_report_no_gap():
    assert arrange_rows(pa.table({"t": [0, 1, 2], "y": [1.0, 2.0, 3.0]}), spec()).notes == []


def test_drop_removes_rows_with_a_missing_value_and_says_how_many():
    table = pa.table({"t": [0, 1, 2, 3], "y": [1.0, None, 3.0, 4.0], "x": [1.0, 2.0, None, 4.0]})
    rows = arrange_rows(table, spec(numeric=["x", "y"], missing="drop"))
    assert rows.values.tolist() == [[1.0, 1.0], [4.0, 4.0]]
    assert "dropped 2 rows" in rows.notes[0]


def test_lags_and_differences_stay_within_each_series_and_spend_its_first_rows():
    table = pa.table({"id": [1] * 5 + [2] * 4, "t": [*range(5), *range(4)], "y": [*range(0, 50, 10), *range(4)]})
    rows = arrange_rows(table, spec(id_column="id", lags=[1, 2], differences=[1]), labelled=True)
    assert rows.columns == ["y", "y_lag1", "y_lag2", "y_diff1"]
    assert rows.values.tolist() == [
        [20, 10, 0, 10],
        [30, 20, 10, 10],
        [40, 30, 20, 10],
        [2, 1, 0, 1],
        [3, 2, 1, 1],
    ]
    assert rows.offsets.tolist() == [0, 3, 5]


def test_non_numeric_and_empty_columns_are_named():
    table = pa.table({"t": [0, 1], "y": ["a", "b"]})
    with pytest.raises(DataError, match="data.target: column 'y' is string, not numeric"):
        arrange_rows(table, spec())
    table = pa.table({"t": [0, 1], "y": [1.0, 2.0], "x": pa.array([None, None], pa.float64())})
    with pytest.raises(DataError, match="column 'x' has no values at all"):
        arrange_rows(table, spec(numeric=["x"]))


def test_unlabelled_rows_need_no_label_column():
    table = pa.table({"seq": [1, 1, 2], "t": [0, 1, 0], "v": [1.0, 2.0, 3.0]})
    classify = spec(task="classify", targets=["label"], numeric=["v"], id_column="seq")
    rows = arrange_rows(table, classify, labelled=False)
    assert rows.labels is None and rows.offsets.tolist() == [0, 2, 3]
