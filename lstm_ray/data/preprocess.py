"""Cleaning and scaling of a numeric frame of time steps; statistics are fitted on training rows only.

A fitted `Scaler` is plain data (`state()`), saved in every checkpoint and with the logged model, so that
inference scales raw rows exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_ray.errors import DataError


def fill_missing(values: np.ndarray, how: str, columns: list[str]) -> np.ndarray:
    """Rows x columns float array with NaNs handled by `how`: interpolate | ffill | drop | error."""
    mask = np.isnan(values)
    if not mask.any():
        return values
    for j, name in enumerate(columns):
        if mask[:, j].all():
            raise DataError("data.features", f"column {name!r} has no values at all; drop it from the features")
    if how == "error":
        rows = int(mask.any(axis=1).sum())
        raise DataError("data.missing", f"{rows} rows have missing values; set data.missing to interpolate or ffill")
    if how == "drop":
        return values[~mask.any(axis=1)]
    out = values.copy()
    steps = np.arange(len(out))
    for j in range(out.shape[1]):
        gaps = mask[:, j]
        if not gaps.any():
            continue
        known = ~gaps
        if how == "interpolate":
            out[gaps, j] = np.interp(steps[gaps], steps[known], out[known, j])
        else:  # ffill, then back-fill the leading gap
            idx = np.where(known, steps, 0)
            np.maximum.accumulate(idx, out=idx)
            out[:, j] = out[idx, j]
            first = np.argmax(known)
            out[:first, j] = out[first, j]
    return out


@dataclass
class Scaler:
    """Per-column affine scaling: x' = (x - shift) / scale."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, train: np.ndarray) -> Scaler:
        n = train.shape[1]
        if kind == "standard":
            shift, scale = train.mean(axis=0), train.std(axis=0)
        elif kind == "minmax":
            shift, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
        elif kind == "none":
            shift, scale = np.zeros(n), np.ones(n)
        else:
            raise DataError("data.scaling", f"unknown scaling {kind!r}; use standard, minmax or none")
        scale = np.where(scale > 0, scale, 1.0)  # a constant column stays constant instead of dividing by 0
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
