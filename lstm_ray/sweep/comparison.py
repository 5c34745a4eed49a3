"""The sweep's winner against the naive baselines, on the same windows and metric: the bar it had to clear.

    comparison = compare_to_baselines(cfg, data, setting, {"val": {"rmse": 0.41}, "test": {"rmse": 0.43}})
    comparison.metrics()   # {"baseline.last_value.val_rmse": 0.54, ..., "test_rmse_vs_baseline": 0.86}
    comparison.lines()     # ["winner test_rmse 0.43 = 0.86x last_value (0.50)", ...] and WARNING: lines

A forecast sweep is compared on its metric (rmse when it searched val_loss, which no baseline has); a
ratio below 1 beats the baseline for an error, above 1 for accuracy, F1 and AUC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstm_ray.config import TASK_METRICS, ExperimentConfig
from lstm_ray.data.baselines import baseline_forecasts
from lstm_ray.data.prepared import PreparedData
from lstm_ray.data.windows import WindowSetting, window_setting
from lstm_ray.train.metrics import baseline_scores

SPLITS = ("val", "test")
FORECAST_ROWS = 20_000  # at most this many (window, step, target) rows in the logged test forecasts


@dataclass
class BaselineComparison:
    metric: str  # compared metric without its split, e.g. "rmse"
    mode: str  # min | max
    scores: dict[str, float]  # every baseline's: "last_value.val_rmse" -> 0.54
    winner: dict[str, float]  # the winner's value of the metric per split

    def best(self, split: str) -> str:
        """The baseline with the best value of the metric on `split` ("" when none has it)."""
        found = {name: value for name, value in self._values(split).items() if math.isfinite(value)}
        if not found:
            return ""
        pick = min if self.mode == "min" else max
        return pick(found, key=found.get)

    def ratio(self, split: str) -> float:
        """The winner's value over the best baseline's on `split`; NaN without either."""
        name = self.best(split)
        baseline = self._values(split).get(name, math.nan)
        value = self.winner.get(split, math.nan)
        return value / baseline if name and baseline else math.nan

    def beats(self, split: str) -> bool:
        ratio = self.ratio(split)
        return not math.isfinite(ratio) or (ratio < 1 if self.mode == "min" else ratio > 1)

    def metrics(self) -> dict[str, float]:
        """What the parent run logs: every baseline score and the winner's ratio on each split."""
        from lstm_ray.tracking.runs import BASELINE_PREFIX  # here: `validate` prints the bar without Ray or MLflow

        ratios = {f"{split}_{self.metric}_vs_baseline": self.ratio(split) for split in SPLITS}
        named = {BASELINE_PREFIX + key: value for key, value in self.scores.items()}
        return named | {key: value for key, value in ratios.items() if math.isfinite(value)}

    def lines(self) -> list[str]:
        """The CLI summary's lines: the winner beside the best baseline per split, and a WARNING where it loses."""
        out = []
        for split in SPLITS:
            name = self.best(split)
            if not name or not math.isfinite(self.winner.get(split, math.nan)):
                continue
            key = f"{split}_{self.metric}"
            out.append(
                f"winner {key} {self.winner[split]:.4g} = {self.ratio(split):.2f}x {name} "
                f"({self._values(split)[name]:.4g})"
            )
            if not self.beats(split):
                out.append(
                    f"WARNING: the winner does not beat the {name} baseline on {split} ({key}); try data.window_norm, "
                    "data.target_transform or a longer search (docs/data.md#baselines)"
                )
        return out

    def _values(self, split: str) -> dict[str, float]:
        suffix = f".{split}_{self.metric}"
        return {key.removesuffix(suffix): value for key, value in self.scores.items() if key.endswith(suffix)}


def compared_metric(cfg: ExperimentConfig) -> tuple[str, str]:
    """(metric without its val_ prefix, mode) the winner is compared on."""
    metric = cfg.search.metric.removeprefix("val_")
    if cfg.data.task == "forecast" and metric == "loss":
        return "rmse", "min"
    return metric, TASK_METRICS[cfg.data.task][f"val_{metric}"]


def compare_to_baselines(
    cfg: ExperimentConfig, data: PreparedData, setting: WindowSetting, winner: dict[str, dict[str, float]]
) -> BaselineComparison:
    """The baselines scored on `setting`'s val and test windows, against the `winner`'s scores on the same
    windows ({"val": {"rmse": ...}, "test": {...}}, as `evaluate` gives them)."""
    metric, mode = compared_metric(cfg)
    values = {split: float(winner.get(split, {}).get(metric, math.nan)) for split in SPLITS}
    return BaselineComparison(metric, mode, baseline_scores(data, setting, SPLITS), values)


def baseline_bar(cfg: ExperimentConfig, data: PreparedData) -> list[str]:
    """The naive baselines' validation scores on the config's own windows, as one line (none without any):
    the bar a trial has to clear, known before any cluster time is spent."""
    metric, _ = compared_metric(cfg)
    scores = baseline_scores(data, window_setting(cfg), ("val",))
    found = {key.split(".")[0]: value for key, value in scores.items() if key.endswith(f".val_{metric}")}
    listed = ", ".join(f"{name} {value:.4g}" for name, value in found.items())
    return [f"baselines to beat (val_{metric} on the validation windows): {listed}"] if found else []


def forecast_frame(data: PreparedData, setting: WindowSetting, predicted: np.ndarray, baseline: str) -> pd.DataFrame:
    """The winner's test forecasts (in the data's units) beside the `baseline`'s and the actual values: one row
    per (window, step, target), the first FORECAST_ROWS of them."""
    windows = data.windows(setting)["test"]
    actual = data.inverse_targets(windows.y)
    if windows.mask is not None:
        actual = np.where(windows.mask, actual, np.nan)  # filled gaps were not scored
    naive = baseline_forecasts(data, setting, "test").get(baseline, np.full_like(actual, np.nan))
    n_windows, horizon, n_targets = actual.shape
    index = np.indices((n_windows, horizon, n_targets)).reshape(3, -1)
    frame = pd.DataFrame(
        {
            "window": index[0],
            "step": index[1] + 1,
            "target": np.asarray(data.target_columns, dtype=object)[index[2]],
            "actual": actual.reshape(-1),
            "winner": predicted.reshape(-1),
            "baseline": naive.reshape(-1),
        }
    )
    return frame.head(FORECAST_ROWS)
