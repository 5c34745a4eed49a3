"""Time columns: read as sortable values per row, then checked within each series (repeats, gaps, season length).

    times = time_values(table, "date")            # datetime64 for dates and text, int64 or float64 for numbers
    check_unique_times(times, id_codes, "date")    # rows sorted by (id, time): DataError on a repeated time
    seasonal_period(times, offsets)                # 24 for hourly rows, 7 daily, 52 weekly, 12 monthly, 4 quarterly

Integer times stay int64, so times beyond 2**53 keep their order; a missing time is an error naming its row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_ray.data.column_types import missing_cells, missing_error
from lstm_ray.errors import DataError, one_line

__all__ = ["GAP_FACTOR", "check_unique_times", "gap_notes", "seasonal_period", "time_values"]

GAP_FACTOR = 1.5  # a step this many times longer than the usual one counts as a gap in the time column
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


def time_values(table: pa.Table, time_column: str | None) -> np.ndarray | None:
    """Sortable time per row: int64 for integers (exact: no two times above 2**53 merge), float64 for other
    numbers; datetime64 for dates (unit us), timestamps (their own unit) and text (unit us, see `_text_times`).
    Zoned times become UTC. Raises DataError for missing values (null or NaN), unsigned times beyond int64 and
    a column that is none of these."""
    if time_column is None:
        return None
    column = table.column(time_column).combine_chunks()
    missing = missing_cells(column)
    if missing.any():
        raise missing_error("data.time_column", time_column, missing)
    kind = column.type
    if pa.types.is_integer(kind):
        return _integer_times(column, time_column)
    if pa.types.is_floating(kind):
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_timestamp(kind):
        return pc.cast(column, pa.timestamp(kind.unit)).to_numpy(zero_copy_only=False)
    if pa.types.is_date(kind):
        return pc.cast(column, pa.timestamp("us")).to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _text_times(column, time_column)
    raise DataError("data.time_column", f"column {time_column!r} is {kind}, which cannot be ordered; use {TIME_FORMS}")


def _integer_times(column: pa.Array, time_column: str) -> np.ndarray:
    if pa.types.is_uint64(column.type) and pc.max(column).as_py() > np.iinfo(np.int64).max:
        raise DataError(
            "data.time_column",
            f"column {time_column!r} has times beyond {np.iinfo(np.int64).max} (int64); subtract the first time",
        )
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


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


def check_unique_times(times: np.ndarray, id_codes: np.ndarray, time_column: str | None) -> None:
    same = (times[1:] == times[:-1]) & (id_codes[1:] == id_codes[:-1])
    if same.any():
        example = times[1:][same][0]
        shown = np.datetime_as_string(example, unit="auto") if times.dtype.kind == "M" else example
        raise DataError(
            "data.time_column",
            f"{int(same.sum())} rows repeat a time within one series (e.g. {shown}) in {time_column!r}; "
            "set data.id_column if the table holds several series, or remove the duplicates",
        )


def gap_notes(times: np.ndarray, id_codes: np.ndarray, time_column: str | None) -> list[str]:
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
