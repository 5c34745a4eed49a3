"""The naive forecasts and classifiers every trial must beat, on exactly the trials' windows, in the data's units.

    forecasts = baseline_forecasts(data, WindowSetting(52, 4, 1), "test")  # {"last_value": (windows, 4, targets)}
    probabilities = baseline_probabilities(data, "val")                      # {"majority": (n, classes), "prior": ...}
    scale = naive_mae(history, observed, codes, offsets, season_length=52)  # per target, for MASE

Forecast: `last_value` repeats the last observed value; `seasonal` repeats the value one season back (skipped
when the season is unknown or a window has less than a season of history); `drift` extends the last value by
the mean change over the lookback. Classify: `majority` always says the most frequent training class; `prior`
gives every class its training frequency (what AUC and loss are measured against). Scores come from the same
metric functions as the trials' (`lstm_ray.train.metrics.baseline_scores`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lstm_ray.data.windows import WindowSetting, split_runs

if TYPE_CHECKING:
    from lstm_ray.data.prepared import PreparedData

__all__ = ["FORECAST_BASELINES", "baseline_forecasts", "baseline_probabilities", "naive_mae"]

FORECAST_BASELINES = ("last_value", "seasonal", "drift")
CLASSIFY_BASELINES = ("majority", "prior")


def baseline_forecasts(data: PreparedData, setting: WindowSetting, split: str) -> dict[str, np.ndarray]:
    """Each forecast baseline's predictions (windows, horizon, targets) for `split`'s windows of `setting`, in
    the targets' own units (like `data.inverse_targets` of the model's outputs)."""
    windows = data.windows(setting)[split]
    starts, history = windows.starts, data.history
    steps = np.arange(setting.horizon)
    last = history[starts - 1]  # (windows, targets)
    out = {"last_value": np.repeat(last[:, None, :], setting.horizon, axis=1)}
    season = data.season_length
    if season:
        back = starts[:, None] + steps - season * ((steps + season) // season)  # one whole season before each step
        series_start = data.offsets[np.searchsorted(data.offsets, starts, side="right") - 1]
        if (back >= series_start[:, None]).all():
            out["seasonal"] = history[back]
    if setting.lookback >= 2:
        slope = (last - history[starts - setting.lookback]) / (setting.lookback - 1)
        out["drift"] = last[:, None, :] + slope[:, None, :] * (steps[None, :, None] + 1)
    return out


def baseline_probabilities(data: PreparedData, split: str) -> dict[str, np.ndarray]:
    """Class probabilities (sequences, classes) of each classify baseline for `split`'s sequences."""
    counts = np.asarray(data.class_counts()["train"], dtype=np.float64)
    n = int((data.codes == ("train", "val", "test").index(split)).sum())
    majority = np.zeros_like(counts)
    majority[counts.argmax()] = 1.0
    return {"majority": np.tile(majority, (n, 1)), "prior": np.tile(counts / counts.sum(), (n, 1))}


def naive_mae(
    history: np.ndarray, observed: np.ndarray, codes: np.ndarray, offsets: np.ndarray, season_length: int = 0
) -> np.ndarray:
    """Per target: the mean absolute error of the seasonal naive forecast (the last-value one when the season
    is unknown or longer than a run) over the training rows, where both values were observed; the scale MASE
    divides by. A target with no such pair, or no error at all, gets 1.0 (MASE is then its MAE)."""
    errors, counts = np.zeros(history.shape[1]), np.zeros(history.shape[1])
    for _, start, end in split_runs(codes, offsets).get(0, []):
        lag = season_length if 0 < season_length < end - start else 1
        change = np.abs(history[start + lag : end] - history[start : end - lag])
        both = observed[start + lag : end] & observed[start : end - lag]
        errors += np.where(both, change, 0.0).sum(axis=0)
        counts += both.sum(axis=0)
    scale = np.divide(errors, counts, out=np.zeros_like(errors), where=counts > 0)
    return np.where(scale > 0, scale, 1.0)
