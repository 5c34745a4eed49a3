"""Encoding rows: categories by the training vocabulary, calendar cycles, missing-value flags."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lstm_ray.data.features import FeatureSpec, encode_rows, fit_vocabularies
from lstm_ray.data.layout import RowSpec, arrange_rows
from lstm_ray.errors import DataError


def rows_of(table: pa.Table, **kw):
    row_spec = RowSpec(**({"task": "forecast", "targets": ["y"], "numeric": ["y"], "time_column": "t"} | kw))
    return arrange_rows(table, row_spec), row_spec


def test_vocabulary_comes_from_training_rows_and_unknowns_encode_as_zeros():
    table = pa.table({"t": [0, 1, 2, 3], "y": [1.0, 2, 3, 4], "shop": ["b", "a", "b", "c"]})
    rows, row_spec = rows_of(table, categorical=["shop"])
    vocab = fit_vocabularies(rows, np.array([True, True, True, False]), ["shop"])
    assert vocab == {"shop": ["a", "b"]}
    onehot = encode_rows(rows, row_spec, FeatureSpec("onehot", vocab))
    assert onehot.columns == ["y", "shop=a", "shop=b"] and onehot.scaled == [True, False, False]
    assert onehot.values[:, 1:].tolist() == [[0, 1], [1, 0], [0, 1], [0, 0]]
    index = encode_rows(rows, row_spec, FeatureSpec("index", vocab))
    assert index.columns == ["y", "shop"] and index.values[:, 1].tolist() == [2, 1, 2, 0]
    assert index.embeddings == {"shop": 3}


def test_calendar_features_are_sine_and_cosine_of_the_cycle():
    times = pa.array(np.array(["2024-01-01T06:00", "2024-03-02T18:00"], dtype="datetime64[s]"))  # a Monday
    rows, row_spec = rows_of(pa.table({"t": times, "y": [1.0, 2.0]}))
    encoded = encode_rows(rows, row_spec, FeatureSpec(calendar=["hour", "weekday", "month", "day", "dayofyear"]))
    got = dict(zip(encoded.columns, encoded.values.T, strict=True))
    angle = np.arctan2(got["hour_sin"], got["hour_cos"]) % (2 * np.pi)
    assert np.allclose(angle * 24 / (2 * np.pi), [6, 18])
    assert np.allclose(got["weekday_sin"][0], 0) and np.allclose(got["weekday_cos"][0], 1)  # Monday is 0
    assert np.allclose(np.arctan2(got["month_sin"], got["month_cos"])[1] * 12 / (2 * np.pi), 2)  # March is 2
    assert np.allclose(np.arctan2(got["day_sin"], got["day_cos"])[1] * 31 / (2 * np.pi), 1)  # 2nd is 1
    assert np.allclose(np.arctan2(got["dayofyear_sin"], got["dayofyear_cos"])[1] * 366 / (2 * np.pi), 61)


def test_calendar_needs_a_date_time_column():
    rows, row_spec = rows_of(pa.table({"t": [1, 2], "y": [1.0, 2.0]}))
    with pytest.raises(DataError, match="data.calendar: needs a date or timestamp"):
        encode_rows(rows, row_spec, FeatureSpec(calendar=["month"]))


def test_missing_flags_mark_the_gaps():
    rows, row_spec = rows_of(pa.table({"t": [0, 1, 2], "y": [1.0, None, 3.0]}))
    encoded = encode_rows(rows, row_spec, FeatureSpec(mask_columns=["y"]))
    assert encoded.columns == ["y", "y_missing"] and encoded.values[:, 1].tolist() == [0, 1, 0]


def test_targets_that_are_not_inputs_follow_the_inputs():
    rows, row_spec = rows_of(pa.table({"t": [0, 1], "y": [1.0, 2.0], "x": [3.0, 4.0]}), numeric=["x"])
    encoded = encode_rows(rows, row_spec, FeatureSpec())
    assert encoded.columns == ["x", "y"] and encoded.n_inputs == 1
