"""Chronological splits, (lookback, horizon) windows over a scaled rows x columns array, padded sequences.

    windows = forecast_windows(values, inputs, targets, runs, WindowSetting(52, 4, 1))
    sequences = padded_sequences(values, inputs, [(0, 12), (12, 19)], labels=np.array([2, 0]))

Windows of the validation and test splits may look back into earlier rows of their series (the past is
observed at prediction time), but their targets lie wholly inside their own split, so no target is seen twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    from lstm_ray.config import ExperimentConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WindowSetting:
    lookback: int
    horizon: int
    stride: int


def window_setting(cfg: ExperimentConfig) -> WindowSetting:
    """The (lookback, horizon, stride) one trial's resolved config asks for."""
    return WindowSetting(cfg.data.lookback, cfg.data.horizon, cfg.data.stride)


@dataclass
class Windows:
    x: np.ndarray  # (windows, lookback, features) float32; classify: (sequences, steps, features) zero-padded
    y: np.ndarray  # (windows, horizon, targets) float32; classify: (sequences,) int64 class ids
    lengths: np.ndarray | None = None  # classify: (sequences,) int64 valid steps of each; forecast: None
    starts: np.ndarray | None = None  # forecast: (windows,) int64 row of each window's first target
    mask: np.ndarray | None = None  # forecast: (windows, horizon, targets) bool, targets observed; None: all are

    def __len__(self) -> int:
        return len(self.x)


def window_starts(
    bounds: tuple[int, int], setting: WindowSetting, series_start: int = 0, target_ok: np.ndarray | None = None
) -> np.ndarray:
    """First target row of every window in `bounds` (possibly none)."""
    start, end = bounds
    first = max(start, series_start + setting.lookback)
    starts = np.arange(first, end - setting.horizon + 1, setting.stride)
    if target_ok is not None and len(starts):
        ok = sliding_window_view(target_ok, setting.horizon).all(axis=1)
        starts = starts[ok[starts]]
    return starts


def forecast_windows(
    values: np.ndarray,
    inputs: list[int],
    targets: list[int],
    runs: list[tuple[int, int, int]],
    setting: WindowSetting,
    target_ok: np.ndarray | None = None,
    observed: np.ndarray | None = None,
) -> Windows:
    """The windows of several (series_start, start, end) runs of rows, in order; possibly none at all.

    `target_ok` (rows,) drops windows with a target that is missing; `observed` (rows, targets) marks the targets
    that were in the source (not filled), which become the windows' `mask` when any is not.
    """
    starts = [window_starts((start, end), setting, series, target_ok) for series, start, end in runs]
    every = (np.concatenate(starts) if starts else np.zeros(0)).astype(np.int64)
    windows = _cut(values, inputs, targets, every, setting)
    windows.starts = every
    if observed is not None and len(every):
        mask = observed[every[:, None] + np.arange(setting.horizon)]  # (windows, horizon, targets)
        windows.mask = None if mask.all() else mask
    return windows


def _cut(values: np.ndarray, inputs: list[int], targets: list[int], starts: np.ndarray, setting: WindowSetting):
    lookback, horizon = setting.lookback, setting.horizon
    if len(starts) == 0:
        return Windows(
            np.zeros((0, lookback, len(inputs)), np.float32), np.zeros((0, horizon, len(targets)), np.float32)
        )
    x_view = sliding_window_view(values[:, inputs], lookback, axis=0)  # (rows - lookback + 1, F, lookback)
    y_view = sliding_window_view(values[:, targets], horizon, axis=0)
    x = np.ascontiguousarray(x_view[starts - lookback].transpose(0, 2, 1), dtype=np.float32)
    y = np.ascontiguousarray(y_view[starts].transpose(0, 2, 1), dtype=np.float32)
    return Windows(x, y)


def split_runs(codes: np.ndarray, offsets: np.ndarray) -> dict[int, list[tuple[int, int, int]]]:
    """Maximal (series_start, start, end) runs of rows with the same code within each series, by code."""
    runs: dict[int, list[tuple[int, int, int]]] = {}
    for series_start, series_end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        part = codes[series_start:series_end]
        cuts = [0, *(np.flatnonzero(np.diff(part)) + 1).tolist(), len(part)]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            runs.setdefault(int(part[a]), []).append((series_start, series_start + a, series_start + b))
    return runs


def padded_sequences(
    values: np.ndarray, inputs: list[int], sequences: list[tuple[int, int]], labels: np.ndarray, max_length: int
) -> Windows:
    """One zero-padded sequence per (start, end) row range: x (N, max_length, F) float32, y the int64 class
    ids, lengths (N,) int64; steps past a sequence's length are zeros."""
    x = np.zeros((len(sequences), max_length, len(inputs)), dtype=np.float32)
    lengths = np.array([end - start for start, end in sequences], dtype=np.int64)
    for i, (start, end) in enumerate(sequences):
        x[i, : end - start] = values[start:end][:, inputs]
    return Windows(x, np.asarray(labels, dtype=np.int64), lengths)
