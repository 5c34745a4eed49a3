"""Filling gaps and scaling a numeric rows x columns frame; statistics are fitted on training rows only.

    values = fill_missing(raw, "interpolate", columns, segments=[(0, 70), (70, 85), (85, 100)])
    scaler = Scaler.fit("robust", values[:70], scaled=[True, False])

A fitted `Scaler` is plain data (`state()`), saved in every checkpoint and with the logged model, so that
inference scales raw rows exactly as training did.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lstm_ray.errors import DataError

__all__ = ["MISSING", "SCALINGS", "Scaler", "fill_missing", "log_targets", "unlog_targets"]

MISSING = ("interpolate", "ffill", "drop", "mask", "error")
SCALINGS = ("standard", "minmax", "robust", "none")
LOGGED = ("log", "log_diff")  # target transforms that model the logarithm of the targets


def fill_missing(
    values: np.ndarray, how: str, columns: list[str], segments: Sequence[tuple[int, int]] | None = None
) -> np.ndarray:
    """Rows x columns float array with NaNs filled by `how`, each of `segments` ([start, end) row ranges,
    default: all rows) on its own, so no value crosses from one series or split into another.

    interpolate: linear between known neighbours, the nearest known value at either end; ffill: the last known
    value (a leading gap takes the first known one); mask and drop: left as they are (`drop` removes rows
    before, `mask` flags and fills after scaling); error: DataError counting the rows with a gap.
    A segment whose column has no value at all keeps its NaNs. Raises DataError for a column with no value.
    """
    mask = np.isnan(values)
    if not mask.any():
        return values
    for j, name in enumerate(columns):
        if mask[:, j].all():
            raise DataError("data.features", f"column {name!r} has no values at all; drop it from the features")
    if how == "error":
        rows = int(mask.any(axis=1).sum())
        raise DataError("data.missing", f"{rows} rows have missing values; set data.missing to interpolate or ffill")
    if how not in ("interpolate", "ffill"):
        return values
    out = values.copy()
    for start, end in segments or [(0, len(values))]:
        for j in np.flatnonzero(mask[start:end].any(axis=0)):
            out[start:end, j] = _fill_column(out[start:end, j], how)
    return out


def _fill_column(column: np.ndarray, how: str) -> np.ndarray:
    known = ~np.isnan(column)
    if not known.any():
        return column
    steps = np.arange(len(column))
    if how == "interpolate":
        return np.interp(steps, steps[known], column[known])
    last = np.maximum.accumulate(np.where(known, steps, 0))
    filled = column[last]
    filled[: np.argmax(known)] = column[np.argmax(known)]
    return filled


@dataclass
class Scaler:
    """Per-column affine scaling x' = (x - shift) / scale; unscaled columns have shift 0 and scale 1."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, train: np.ndarray, scaled: Sequence[bool] | None = None) -> Scaler:
        """Statistics of the `train` rows, ignoring NaN: standard (mean, std), minmax (min, max - min),
        robust (median, interquartile range) or none. Columns where `scaled` is False, and a column with no
        training value, are left as they are; a constant column is only shifted (its scale becomes 1)."""
        n = train.shape[1]
        if kind not in SCALINGS:
            raise DataError("data.scaling", f"unknown scaling {kind!r}; use one of {', '.join(SCALINGS)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN training column: handled below
            shift, scale = _statistics(kind, train)
        keep = np.ones(n, dtype=bool) if scaled is None else np.asarray(scaled, dtype=bool)
        shift = np.where(keep & np.isfinite(shift), shift, 0.0)
        scale = np.where(keep & np.isfinite(scale) & (scale > 0), scale, 1.0)
        return cls(kind, shift.astype(np.float64), scale.astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.shift) / self.scale).astype(np.float32)

    def inverse(self, values: np.ndarray, columns: slice | list[int] = slice(None)) -> np.ndarray:
        return values * self.scale[columns] + self.shift[columns]

    def state(self) -> dict:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Scaler:
        return cls(state["kind"], np.asarray(state["shift"]), np.asarray(state["scale"]))


def _statistics(kind: str, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if kind == "standard":
        return np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    if kind == "minmax":
        low = np.nanmin(train, axis=0)
        return low, np.nanmax(train, axis=0) - low
    if kind == "robust":
        q25, q50, q75 = np.nanpercentile(train, [25, 50, 75], axis=0)
        return q50, q75 - q25
    return np.zeros(train.shape[1]), np.ones(train.shape[1])


def log_targets(values: np.ndarray, columns: list[str], targets: list[str], transform: str) -> np.ndarray:
    """`values` (rows x columns) with the `targets` columns replaced by their natural logarithm when `transform`
    (data.target_transform) is log or log_diff; unchanged otherwise. Missing values stay missing.
    Raises DataError when a target has a value that is zero or negative."""
    if transform not in LOGGED:
        return values
    out = values.astype(np.float64, copy=True)
    for name in targets:
        j = columns.index(name)
        column = out[:, j]
        bad = np.flatnonzero(column <= 0)
        if len(bad):
            raise DataError(
                "data.target_transform",
                f"{transform} needs positive targets, but {name!r} is {column[bad[0]]:g} at row {int(bad[0])} "
                f"({len(bad)} values <= 0); use diff or none",
            )
        out[:, j] = np.log(column)
    return out


def unlog_targets(values: np.ndarray, transform: str) -> np.ndarray:
    """Forecasts of logged targets back in the targets' own units (the inverse of `log_targets`)."""
    return np.exp(values) if transform in LOGGED else values
