"""From a raw table to ordered rows: columns checked, time parsed, rows sorted per id, history features added.

    rows = arrange_rows(table, spec)   # the same steps at training and at inference time
    rows.offsets                        # row ranges of the series (forecast) or sequences (classify)

`RowSpec` is plain data describing those steps; it is saved with the model, so inference arranges raw rows
exactly as training did. Nothing here fits a statistic: vocabularies and scalers come later, on training rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_ray.data.column_types import (
    missing_cells,
    missing_error,
    plain_columns,
    refuse_nested,
    refuse_text_among_numbers,
)
from lstm_ray.data.times import GAP_FACTOR, check_unique_times, gap_notes, seasonal_period, time_values
from lstm_ray.errors import DataError

__all__ = ["GAP_FACTOR", "RowSpec", "Rows", "arrange_rows", "seasonal_period"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class RowSpec:
    """What to read from a table and how to arrange it (saved in the preprocessing state)."""

    task: str  # forecast | classify
    targets: list[str]  # forecast: numeric columns to predict; classify: the one label column
    numeric: list[str]  # numeric input columns (besides lags, categories, calendar and masks)
    categorical: list[str] = field(default_factory=list)
    id_column: str | None = None
    time_column: str | None = None
    missing: str = "interpolate"
    lags: list[int] = field(default_factory=list)
    differences: list[int] = field(default_factory=list)

    @property
    def value_columns(self) -> list[str]:
        """Numeric columns read from the table: inputs, then forecast targets not among them."""
        extra = [t for t in self.targets if t not in self.numeric] if self.task == "forecast" else []
        return [*self.numeric, *extra]

    @property
    def history_columns(self) -> list[str]:
        """Lag and difference columns derived from the forecast targets, in the order they are added."""
        names = [f"{t}_lag{k}" for t in self.targets for k in self.lags]
        return names + [f"{t}_diff{k}" for t in self.targets for k in self.differences]

    @property
    def history(self) -> int:
        """Rows at the start of each series spent as history for lags and differences."""
        return max([*self.lags, *self.differences], default=0)


@dataclass
class Rows:
    """Rows sorted by (id, time), with what the splits, encoders and windows need, one entry per row."""

    values: np.ndarray  # rows x value_columns + history_columns, float64, NaN where missing
    columns: list[str]
    categories: dict[str, np.ndarray]  # raw category per row (object arrays; None where missing)
    times: np.ndarray | None  # datetime64 (us, or a timestamp column's own unit), int64 or float64
    offsets: np.ndarray  # series i is rows offsets[i]:offsets[i + 1]
    series_ids: list[Any]  # id of each series (0 when there is no id column)
    labels: np.ndarray | None = None  # classify: the raw label per row
    marks: np.ndarray | None = None  # split_column value per row, when the config names one
    notes: list[str] = field(default_factory=list)  # what was found and done, for the data report

    @property
    def series(self) -> list[tuple[int, int]]:
        return list(zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.values)


def arrange_rows(table: pa.Table, spec: RowSpec, split_column: str | None = None, labelled: bool = True) -> Rows:
    """Sort `table` by (id, time) and read the columns `spec` names; drop rows as `spec.missing` and the
    lag history ask. Unless `labelled`, targets are read only where lags need them and labels not at all (raw
    rows at prediction time). Raises DataError for a missing or non-numeric column, a column without any value,
    a time column that cannot be ordered (wrong type, missing or repeated values within an id) and missing
    ids or labels."""
    if table.num_rows == 0:
        raise DataError("data.source", "the data has no rows")
    value_columns = spec.value_columns if labelled else _unlabelled_columns(spec)
    table = _readable(table, spec, value_columns, split_column, labelled)
    id_codes, series_ids = _id_codes(table, spec.id_column)
    times = time_values(table, spec.time_column)
    order = np.lexsort((times, id_codes)) if times is not None else np.argsort(id_codes, kind="stable")
    table, id_codes = table.take(pa.array(order)), id_codes[order]
    times = times[order] if times is not None else None
    notes: list[str] = []
    if times is not None:
        check_unique_times(times, id_codes, spec.time_column)
        notes += gap_notes(times, id_codes, spec.time_column)
    values = np.column_stack([_numeric(table, c, spec) for c in value_columns] or [np.empty((len(order), 0))])
    _check_not_empty(values, value_columns, spec)
    keep = np.ones(len(order), dtype=bool)
    if spec.missing == "drop" and values.size:
        keep = ~np.isnan(values).any(axis=1)
        if not keep.all():
            notes.append(f"data.missing: dropped {int((~keep).sum())} rows with a missing value")
    rows = Rows(
        values=values,
        columns=list(value_columns),
        categories={c: _objects(table, c) for c in spec.categorical},
        times=times,
        offsets=np.zeros(1, dtype=np.int64),
        series_ids=series_ids,
        labels=_labels(table, spec) if spec.task == "classify" and labelled else None,
        marks=_objects(table, split_column) if split_column else None,
        notes=notes,
    )
    return _finish(rows, id_codes, keep, spec)


def _finish(rows: Rows, id_codes: np.ndarray, keep: np.ndarray, spec: RowSpec) -> Rows:
    """Apply the row filter, add lag and difference columns, drop each series' history rows."""
    rows = _take(rows, keep)
    id_codes = id_codes[keep]
    if spec.history:
        rows.values = np.column_stack([rows.values, _history_values(rows.values, rows.columns, id_codes, spec)])
        rows.columns += spec.history_columns
        position = np.arange(len(id_codes)) - _series_start(id_codes)
        if len(rows) and not (position >= spec.history).any():
            key = "data.lags" if spec.history in spec.lags else "data.differences"
            raise DataError(key, f"no series is longer than its {spec.history} rows of history; use smaller steps")
        rows = _take(rows, position >= spec.history)
        id_codes = id_codes[position >= spec.history]
        rows.notes.append(f"data.lags: the first {spec.history} rows of each series serve as history only")
    starts = np.flatnonzero(np.diff(id_codes)) + 1
    rows.offsets = np.concatenate([[0], starts, [len(id_codes)]]).astype(np.int64)
    present = id_codes[rows.offsets[:-1]] if len(id_codes) else np.array([], dtype=np.int64)
    rows.series_ids = [rows.series_ids[i] for i in present.tolist()]
    if len(rows) == 0:
        raise DataError("data.missing", "no row is left; use data.missing: interpolate, or fewer lags")
    return rows


def _unlabelled_columns(spec: RowSpec) -> list[str]:
    needed = spec.targets if spec.history else []
    return list(dict.fromkeys([*spec.numeric, *needed]))


def _readable(
    table: pa.Table, spec: RowSpec, value_columns: list[str], split_column: str | None, labelled: bool
) -> pa.Table:
    """`table` with the columns the rows read decoded to plain types (`plain_columns`), after checking each is
    there, once, and that id, category, split and label columns hold one plain value per row."""
    labels = spec.targets if spec.task == "classify" and labelled else []
    roles = {
        "data.id_column": [spec.id_column],
        "data.categorical": spec.categorical,
        "data.split_column": [split_column],
        "data.target": labels,
    }
    named = [spec.time_column, *[name for names in roles.values() for name in names]]
    used = [name for name in [*value_columns, *named] if name]
    _check_present(table, used)
    table = plain_columns(table, used)
    for name in value_columns:
        refuse_text_among_numbers(table, name, "data.target" if name in spec.targets else "data.features")
    for key, names in roles.items():
        for name in names:
            if name is not None:
                refuse_nested(table, name, key)
    return table


def _check_present(table: pa.Table, names: list[str]) -> None:
    for name in names:
        if name not in table.column_names:
            raise DataError(
                "data.features", f"column {name!r} not in the data; columns are {', '.join(table.column_names)}"
            )
        if table.column_names.count(name) > 1:
            raise DataError(
                "data.source", f"column {name!r} appears {table.column_names.count(name)} times; rename the copies"
            )


def _check_not_empty(values: np.ndarray, columns: list[str], spec: RowSpec) -> None:
    empty = np.isnan(values).all(axis=0)
    if empty.any():
        name = columns[int(np.argmax(empty))]
        if name in spec.targets:
            raise DataError("data.target", f"column {name!r} has no values at all; fill it or choose another column")
        raise DataError("data.features", f"column {name!r} has no values at all; drop it from the features")


def _take(rows: Rows, keep: np.ndarray) -> Rows:
    if keep.all():
        return rows
    rows.values = rows.values[keep]
    rows.categories = {c: v[keep] for c, v in rows.categories.items()}
    rows.times = rows.times[keep] if rows.times is not None else None
    rows.labels = rows.labels[keep] if rows.labels is not None else None
    rows.marks = rows.marks[keep] if rows.marks is not None else None
    return rows


def _series_start(id_codes: np.ndarray) -> np.ndarray:
    """For every row, the index of its series' first row (rows are grouped by id)."""
    first = np.r_[True, id_codes[1:] != id_codes[:-1]] if len(id_codes) else np.zeros(0, dtype=bool)
    return np.maximum.accumulate(np.where(first, np.arange(len(id_codes)), 0))


def _history_values(values: np.ndarray, columns: list[str], id_codes: np.ndarray, spec: RowSpec) -> np.ndarray:
    """Lag and difference columns of the targets, NaN where the series has no row k steps back."""
    start = _series_start(id_codes)
    index = np.arange(len(id_codes))

    def back(target: str, k: int) -> np.ndarray:
        column = values[:, columns.index(target)]
        return np.where(index - k >= start, column[np.maximum(index - k, 0)], np.nan)

    lags = [back(t, k) for t in spec.targets for k in spec.lags]
    diffs = [values[:, columns.index(t)] - back(t, k) for t in spec.targets for k in spec.differences]
    return np.column_stack(lags + diffs)


def _id_codes(table: pa.Table, id_column: str | None) -> tuple[np.ndarray, list[Any]]:
    if id_column is None:
        return np.zeros(table.num_rows, dtype=np.int64), [0]
    column = table.column(id_column)
    missing = missing_cells(column)
    if missing.any():  # else each NaN id would be a series of its own
        raise missing_error("data.id_column", id_column, missing)
    unique, codes = np.unique(np.asarray(column.to_pylist(), dtype=object), return_inverse=True)
    return codes.astype(np.int64), unique.tolist()


def _numeric(table: pa.Table, name: str, spec: RowSpec) -> np.ndarray:
    """The column as float64, NaN where missing. Raises DataError for a non-numeric column or one holding
    infinities or values beyond float32 (the models compute in float32)."""
    column = table.column(name)
    kind = column.type
    key = "data.target" if name in spec.targets else "data.features"
    if pa.types.is_null(kind):  # what a CSV column with no value at all is read as
        raise DataError(key, f"column {name!r} has no values at all; fill it or choose another column")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            key, f"column {name!r} is {kind}, not numeric; choose numeric columns or list it in data.categorical"
        )
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    too_large = np.abs(values) > FLOAT32_MAX  # NaN compares False: missing values stay allowed
    if too_large.any():
        row = int(np.argmax(too_large))
        raise DataError(
            key,
            f"column {name!r} has {int(too_large.sum())} infinite or too large values (e.g. {float(values[row])!r}); "
            "replace them or leave them empty (missing)",
        )
    return values


def _objects(table: pa.Table, name: str) -> np.ndarray:
    """The column's values as Python objects; None where missing (NaN too, which would be a category per row)."""
    column = table.column(name)
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    values[missing_cells(column)] = None
    return values


def _labels(table: pa.Table, spec: RowSpec) -> np.ndarray:
    (label,) = spec.targets
    missing = missing_cells(table.column(label))
    if missing.any():
        raise missing_error("data.target", label, missing)
    return _objects(table, label)
