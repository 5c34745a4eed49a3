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

from lstm_ray.errors import DataError, one_line

__all__ = ["GAP_FACTOR", "RowSpec", "Rows", "arrange_rows", "seasonal_period"]

GAP_FACTOR = 1.5  # a step this many times longer than the usual one counts as a gap in the time column
FLOAT32_MAX = float(np.finfo(np.float32).max)
TIME_FORMS = "numbers, dates, timestamps or text such as 2024-01-31, 2024-01-31T06:00:00.250Z, 2024-01, 2024Q1, 2024"
# Text forms ISO 8601 parsing refuses, rewritten to the first day of their period (pattern, replacement).
PERIOD_TEXT = [
    (r"^(\d{4})$", r"\1-01-01"),  # year
    (r"^(\d{4})[-/](\d{2})$", r"\1-\2-01"),  # year-month
    *[(rf"^(\d{{4}})[- ]?[Qq]{q}$", rf"\1-{3 * q - 2:02d}-01") for q in range(1, 5)],  # year-quarter
]
ZONE = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"  # a clock time ending in Z or an offset
# Usual steps in seconds (shortest, longest) and the season length they imply.
SEASONS = [
    (3600, 3600, 24),  # hourly: a day
    (86400, 86400, 7),  # daily: a week
    (7 * 86400, 7 * 86400, 52),  # weekly: a year
    (28 * 86400, 31 * 86400, 12),  # monthly: a year
    (89 * 86400, 92 * 86400, 4),  # quarterly: a year
]


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
    times: np.ndarray | None  # datetime64 (us, or a timestamp column's own unit) or float64
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
    _check_present(table, [*value_columns, *spec.categorical, spec.id_column, spec.time_column, split_column])
    id_codes, series_ids = _id_codes(table, spec.id_column)
    times = _time_values(table, spec.time_column)
    order = np.lexsort((times, id_codes)) if times is not None else np.argsort(id_codes, kind="stable")
    table, id_codes = table.take(pa.array(order)), id_codes[order]
    times = times[order] if times is not None else None
    notes: list[str] = []
    if times is not None:
        _check_unique_times(times, id_codes, spec.time_column)
        notes += _gap_notes(times, id_codes, spec.time_column)
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


def _check_present(table: pa.Table, names: list[str | None]) -> None:
    for name in names:
        if name is not None and name not in table.column_names:
            raise DataError(
                "data.features", f"column {name!r} not in the data; columns are {', '.join(table.column_names)}"
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
    if column.null_count:
        raise DataError("data.id_column", f"column {id_column!r} has {column.null_count} missing ids; fill them")
    unique, codes = np.unique(np.asarray(column.to_pylist(), dtype=object), return_inverse=True)
    return codes.astype(np.int64), unique.tolist()


def seasonal_period(times: np.ndarray | None, offsets: np.ndarray) -> int:
    """The season length the time column's usual step implies: hourly 24, daily 7, weekly 52, monthly 12,
    quarterly 4; 0 when unknown (no time column, numeric times, or any other step). The usual step is the
    (lower) median of the steps within series (series i is rows offsets[i]:offsets[i + 1]), so a few gaps or
    months of different lengths do not change it."""
    if times is None or times.dtype.kind != "M" or len(times) < 2:
        return 0
    within = np.ones(len(times) - 1, dtype=bool)
    within[np.asarray(offsets[1:-1], dtype=np.int64) - 1] = False  # the step into each later series' first row
    steps = _seconds(np.diff(times)[within])
    if len(steps) == 0:
        return 0
    usual = float(np.partition(steps, (len(steps) - 1) // 2)[(len(steps) - 1) // 2])
    return next((season for low, high, season in SEASONS if low <= usual <= high), 0)


def _seconds(steps: np.ndarray) -> np.ndarray:
    """Time steps as float64 seconds (keeping any sub-second part); numeric steps as they are."""
    return steps / np.timedelta64(1, "s") if steps.dtype.kind == "m" else steps.astype(np.float64)


def _time_values(table: pa.Table, time_column: str | None) -> np.ndarray | None:
    """Sortable time per row: float64 for numbers; datetime64 for dates (unit us), timestamps (their own unit)
    and text (unit us, see `_text_times`). Zoned times become UTC. Raises DataError for missing values and for
    a column that is none of these."""
    if time_column is None:
        return None
    column = table.column(time_column).combine_chunks()
    if column.null_count:
        raise DataError(
            "data.time_column", f"column {time_column!r} has {column.null_count} missing values; fill or drop them"
        )
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_timestamp(kind):
        return pc.cast(column, pa.timestamp(kind.unit)).to_numpy(zero_copy_only=False)
    if pa.types.is_date(kind):
        return pc.cast(column, pa.timestamp("us")).to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _text_times(column, time_column)
    raise DataError("data.time_column", f"column {time_column!r} is {kind}, which cannot be ordered; use {TIME_FORMS}")


def _text_times(column: pa.Array, time_column: str) -> np.ndarray:
    """ISO 8601 text as datetime64[us]: dates and timestamps (sub-second parts kept; with Z or an offset they
    become UTC), and the first day of a year `2024`, month `2024-01` / `2024/01` or quarter `2024Q1` /
    `2024-Q1` / `2024 Q1`. Raises DataError naming the accepted forms for any other text."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    for pattern, replacement in PERIOD_TEXT:
        text = pc.replace_substring_regex(text, pattern=pattern, replacement=replacement)
    zoned = pc.match_substring_regex(text, ZONE)
    try:
        local = pc.cast(pc.if_else(zoned, None, text), pa.timestamp("us"))
        utc = pc.cast(pc.cast(pc.if_else(zoned, text, None), pa.timestamp("us", "UTC")), pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(
            "data.time_column",
            f"column {time_column!r} cannot be read as times ({one_line(err, limit=160)}); use {TIME_FORMS}",
        ) from None
    return pc.if_else(zoned, utc, local).to_numpy(zero_copy_only=False)


def _check_unique_times(times: np.ndarray, id_codes: np.ndarray, time_column: str | None) -> None:
    same = (times[1:] == times[:-1]) & (id_codes[1:] == id_codes[:-1])
    if same.any():
        example = times[1:][same][0]
        shown = np.datetime_as_string(example, unit="auto") if times.dtype.kind == "M" else example
        raise DataError(
            "data.time_column",
            f"{int(same.sum())} rows repeat a time within one series (e.g. {shown}) in {time_column!r}; "
            "set data.id_column if the table holds several series, or remove the duplicates",
        )


def _gap_notes(times: np.ndarray, id_codes: np.ndarray, time_column: str | None) -> list[str]:
    """One note counting the steps much longer than the usual one (the median step)."""
    within = id_codes[1:] == id_codes[:-1]
    steps = np.diff(times)[within]
    if len(steps) == 0:
        return []
    numbers = _seconds(steps)
    usual = float(np.median(numbers))
    gaps = numbers > GAP_FACTOR * usual
    if not gaps.any():
        return []
    unit = " s" if steps.dtype.kind == "m" else ""
    return [
        f"data.time_column: {int(gaps.sum())} gaps in {time_column!r} (usual step {usual:g}{unit}, longest "
        f"{float(numbers.max()):g}{unit}); windows run across them as if the rows were consecutive"
    ]


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
    return np.asarray(table.column(name).to_pylist(), dtype=object)


def _labels(table: pa.Table, spec: RowSpec) -> np.ndarray:
    (label,) = spec.targets
    column = table.column(label)
    if column.null_count:
        raise DataError("data.target", f"column {label!r} has {column.null_count} rows without a label")
    return _objects(table, label)
