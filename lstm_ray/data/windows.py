"""Chronological splits and (lookback, horizon) windows over a scaled rows x columns array.

Windows of the validation and test splits may look back into earlier rows (the past is observed at
prediction time), but their targets lie wholly inside their own split, so no target is seen twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lstm_ray.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WindowSetting:
    lookback: int
    horizon: int
    stride: int


@dataclass
class Windows:
    x: np.ndarray  # (windows, lookback, features) float32
    y: np.ndarray  # (windows, horizon, targets) float32

    def __len__(self) -> int:
        return len(self.x)


def split_bounds(n_rows: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Row ranges [start, end) of each split, in time order train < val < test."""
    n_test = max(1, round(n_rows * test_fraction))
    n_val = max(1, round(n_rows * val_fraction))
    n_train = n_rows - n_val - n_test
    return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_rows)}


def check_enough_rows(n_rows: int, bounds: dict[str, tuple[int, int]], setting: WindowSetting) -> None:
    train_rows = bounds["train"][1]
    if train_rows < setting.lookback + setting.horizon + 1:
        raise DataError(
            "data.lookback",
            f"{n_rows} rows leave {train_rows} for training, too few for lookback {setting.lookback} + horizon "
            f"{setting.horizon}; lower data.lookback or data.horizon, or use a longer series",
        )
    for split in ("val", "test"):
        start, end = bounds[split]
        if end - start < setting.horizon:
            raise DataError(
                f"data.{split}_fraction",
                f"the {split} split has {end - start} rows, fewer than horizon {setting.horizon}; "
                f"raise data.{split}_fraction or lower data.horizon",
            )


def make_windows(
    values: np.ndarray,
    inputs: list[int],
    targets: list[int],
    bounds: tuple[int, int],
    setting: WindowSetting,
) -> Windows:
    """Windows whose targets start in [bounds) and end inside it; inputs are the `lookback` rows before."""
    start, end = bounds
    first = max(start, setting.lookback)
    last = end - setting.horizon  # inclusive: the last target start
    starts = np.arange(first, last + 1, setting.stride)
    if len(starts) == 0:
        raise DataError("data.lookback", f"no window fits rows {start}-{end}; lower data.lookback or data.horizon")
    x_view = sliding_window_view(values[:, inputs], setting.lookback, axis=0)  # (rows-lb+1, F, lb)
    y_view = sliding_window_view(values[:, targets], setting.horizon, axis=0)
    x = np.ascontiguousarray(x_view[starts - setting.lookback].transpose(0, 2, 1), dtype=np.float32)
    y = np.ascontiguousarray(y_view[starts].transpose(0, 2, 1), dtype=np.float32)
    return Windows(x, y)
