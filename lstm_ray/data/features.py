"""Model input columns from arranged rows: numeric values, lags, categories, calendar and missing-value flags.

    spec = FeatureSpec("onehot", fit_vocabularies(rows, train_rows, ["store"]), ["weekday"], ["price"])
    frame = encode_rows(rows, row_spec, spec)   # frame.values: rows x columns, NaN where a value is missing

Vocabularies are the one statistic here, fitted on training rows only. Inputs come first in `frame.columns`
(numeric, lags and differences, categories, calendar, flags); forecast targets that are not inputs follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstm_ray.data.layout import Rows, RowSpec
from lstm_ray.errors import DataError

__all__ = ["CALENDAR_PERIODS", "EncodedRows", "FeatureSpec", "encode_rows", "fit_vocabularies"]

CALENDAR_PERIODS = {"hour": 24, "weekday": 7, "day": 31, "month": 12, "dayofyear": 366}  # cycle of each feature


@dataclass
class FeatureSpec:
    """How the input columns are made (saved in the preprocessing state)."""

    categorical_encoding: str = "onehot"  # onehot: a 0/1 column per category; index: one column of codes
    vocabularies: dict[str, list[Any]] = field(default_factory=dict)  # categories seen in training rows
    calendar: list[str] = field(default_factory=list)  # each becomes <name>_sin and <name>_cos
    mask_columns: list[str] = field(default_factory=list)  # numeric inputs flagged by <name>_missing


@dataclass
class EncodedRows:
    values: np.ndarray  # rows x columns float64, NaN where a numeric value is missing
    columns: list[str]
    n_inputs: int  # columns[:n_inputs] are the model inputs
    scaled: list[bool]  # per column: is it scaled (numeric) or left as is (codes, one-hot, calendar, flags)
    embeddings: dict[str, int]  # index encoding: input column -> number of codes (0 is "unknown")


def fit_vocabularies(rows: Rows, train: np.ndarray, columns: list[str]) -> dict[str, list[Any]]:
    """Sorted categories of each column among the `train` rows (a boolean row mask); missing ones left out."""
    vocabularies = {}
    for name in columns:
        seen = {v for v in rows.categories[name][train].tolist() if v is not None}
        vocabularies[name] = sorted(seen, key=lambda v: (str(type(v)), v))
    return vocabularies


def encode_rows(rows: Rows, row_spec: RowSpec, spec: FeatureSpec) -> EncodedRows:
    """The model's columns for every row. A category not in the vocabulary (or missing) encodes as all zeros
    (onehot) or code 0 (index). Raises DataError when calendar features are asked of a non-date time column."""
    numeric = [*row_spec.numeric, *row_spec.history_columns]
    blocks = [rows.values[:, [rows.columns.index(c) for c in numeric]]]
    columns, scaled = list(numeric), [True] * len(numeric)
    embeddings = {}
    for name in row_spec.categorical:
        block, names = _categories(rows.categories[name], name, spec)
        blocks.append(block)
        columns += names
        scaled += [False] * len(names)
        if spec.categorical_encoding == "index":
            embeddings[name] = len(spec.vocabularies[name]) + 1
    if spec.calendar:
        block, names = _calendar(rows.times, spec.calendar, row_spec.time_column)
        blocks.append(block)
        columns += names
        scaled += [False] * len(names)
    for name in spec.mask_columns:
        blocks.append(np.isnan(rows.values[:, rows.columns.index(name)]).astype(np.float64)[:, None])
        columns.append(f"{name}_missing")
        scaled.append(False)
    n_inputs = len(columns)
    if row_spec.task == "forecast":
        extra = [t for t in row_spec.targets if t not in columns and t in rows.columns]  # absent when predicting
        blocks.append(rows.values[:, [rows.columns.index(c) for c in extra]])
        columns += extra
        scaled += [True] * len(extra)
    return EncodedRows(np.column_stack(blocks), columns, n_inputs, scaled, embeddings)


def _categories(raw: np.ndarray, name: str, spec: FeatureSpec) -> tuple[np.ndarray, list[str]]:
    vocabulary = spec.vocabularies[name]
    position = {value: i + 1 for i, value in enumerate(vocabulary)}
    codes = np.array([position.get(v, 0) for v in raw.tolist()], dtype=np.int64)
    if spec.categorical_encoding == "index":
        return codes.astype(np.float64)[:, None], [name]
    onehot = np.zeros((len(codes), len(vocabulary) + 1))
    onehot[np.arange(len(codes)), codes] = 1.0
    return onehot[:, 1:], [f"{name}={value}" for value in vocabulary]


def _calendar(times: np.ndarray | None, features: list[str], time_column: str | None) -> tuple[np.ndarray, list[str]]:
    if times is None or times.dtype.kind != "M":
        raise DataError(
            "data.calendar",
            f"needs a date or timestamp data.time_column, got {time_column!r}; remove data.calendar or set one",
        )
    days = times.astype("datetime64[D]")
    position = {
        "hour": (times.astype("datetime64[h]") - days).astype(np.int64),
        "weekday": (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday; Monday is 0
        "day": (days - times.astype("datetime64[M]")).astype(np.int64),
        "month": times.astype("datetime64[M]").astype(np.int64) % 12,
        "dayofyear": (days - times.astype("datetime64[Y]")).astype(np.int64),
    }
    blocks, names = [], []
    for feature in features:
        angle = 2 * np.pi * position[feature] / CALENDAR_PERIODS[feature]
        blocks += [np.sin(angle), np.cos(angle)]
        names += [f"{feature}_sin", f"{feature}_cos"]
    return np.column_stack(blocks), names
