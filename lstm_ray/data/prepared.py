"""Prepared data: encoded, filled and scaled rows, their splits and folds, and the windows of every setting.

    data.windows(setting)["train"]      # Windows(x, y) (forecast) or Windows(x, y, lengths) (classify)
    data.folds(setting)[k]["val"]       # with data.validation: cv; scaled by fold k's own scaler
    data.inverse_targets(y, fold=k)     # forecast targets back in their own units
    data.window_frame(cfg.data)         # how the model frames each window (window_norm, target_transform)

Built by `lstm_ray.data.dataset.prepare_dataset`; windows are cut on demand and kept, once per setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstm_ray.config import PREPARED_KEYS, DataConfig
from lstm_ray.data.features import FeatureSpec
from lstm_ray.data.layout import RowSpec
from lstm_ray.data.preprocess import Scaler, unlog_targets
from lstm_ray.data.windows import SPLITS, Windows, WindowSetting, forecast_windows, padded_sequences, split_runs
from lstm_ray.errors import DataError

__all__ = ["PreparedData", "Scaled", "prepared_key"]


@dataclass
class Scaled:
    """Rows filled and scaled by a scaler fitted on one set of training rows (the holdout's or a fold's)."""

    values: np.ndarray  # rows x columns float32; missing inputs are 0 (the training centre)
    scaler: Scaler
    target_ok: np.ndarray  # per row: every forecast target was observed (False only with missing: mask)


@dataclass
class PreparedData:
    """Encoded rows, their splits and folds, and the windows (or sequences) of every setting a sweep uses."""

    task: str  # forecast | classify
    columns: list[str]  # columns of `values`, in order; inputs first
    input_index: list[int]  # which columns the model reads
    target_index: list[int]  # which columns it predicts (forecast; empty for classify)
    offsets: np.ndarray  # row ranges of the series (forecast) or sequences (classify)
    codes: np.ndarray  # split code per row (forecast) or per sequence (classify): 0 train, 1 val, 2 test
    holdout: Scaled
    row_spec: RowSpec
    feature_spec: FeatureSpec
    embeddings: dict[str, int]  # input column -> number of codes, for categorical_encoding: index
    labels: np.ndarray | None = None  # classify: class id per sequence
    class_names: list[Any] = field(default_factory=list)  # classify: the label of each class id
    fold_codes: list[np.ndarray] = field(default_factory=list)  # cv: per fold, 0 train, 1 val, -1 unused
    fold_scaled: list[Scaled] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # gaps, dropped rows, class balance: the data report
    by_setting: dict[WindowSetting, dict[str, Windows]] = field(default_factory=dict)
    folds_by_setting: dict[WindowSetting, list[dict[str, Windows]]] = field(default_factory=dict)
    prepared_key: tuple[str, ...] = ()  # this data's values of the PREPARED_KEYS
    scaled: list[bool] = field(default_factory=list)  # per column: numeric (scaled), so a window frame normalises it
    target_transform: str = "none"  # data.target_transform; log and log_diff hold the targets' logarithm
    observed: np.ndarray | None = None  # forecast: rows x targets, True where the source had the value (not filled)
    history: np.ndarray | None = None  # forecast: rows x targets in their own units, gaps filled (for baselines)
    season_length: int = 0  # forecast: data.season_length, else the time column's; 0: unknown
    naive_mae: np.ndarray | None = None  # forecast: per target, the naive forecast's training MAE (MASE's scale)
    variants: dict[tuple[str, ...], PreparedData] = field(default_factory=dict)  # other searched choices

    @property
    def values(self) -> np.ndarray:
        return self.holdout.values

    @property
    def scaler(self) -> Scaler:
        return self.holdout.scaler

    @property
    def input_columns(self) -> list[str]:
        return [self.columns[i] for i in self.input_index]

    @property
    def target_columns(self) -> list[str]:
        return [self.columns[i] for i in self.target_index]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def max_length(self) -> int:
        """The longest sequence (classify); every padded x has this many steps."""
        return int(np.diff(self.offsets).max())

    def for_config(self, cfg: DataConfig) -> PreparedData:
        """The data prepared with `cfg`'s scaling, missing and categorical_encoding (one trial's choice).
        Raises KeyError when that choice was not prepared (use prepare_sweep_data)."""
        key = prepared_key(cfg)
        if key == self.prepared_key:
            return self
        if key not in self.variants:
            raise KeyError(f"no data prepared for {dict(zip(PREPARED_KEYS, key, strict=True))}; use prepare_sweep_data")
        return self.variants[key]

    def windows(self, setting: WindowSetting) -> dict[str, Windows]:
        """{"train", "val", "test"} -> Windows for `setting` (ignored by classify: whole sequences)."""
        setting = self._key(setting)
        if setting not in self.by_setting:
            self.add_setting(setting)
        return self.by_setting[setting]

    def folds(self, setting: WindowSetting) -> list[dict[str, Windows]]:
        """With data.validation: cv, one {"train", "val"} per fold, each scaled by its own training rows."""
        setting = self._key(setting)
        if setting not in self.folds_by_setting:
            self.add_setting(setting)
        return self.folds_by_setting[setting]

    def add_setting(self, setting: WindowSetting) -> None:
        """Build the windows (and folds) of `setting` now. Raises DataError when a split gets no window."""
        setting = self._key(setting)
        longest = int(np.diff(self.offsets).max())
        if self.task == "forecast" and setting.lookback + setting.horizon > longest:
            raise DataError(
                "data.horizon" if setting.horizon > setting.lookback else "data.lookback",
                f"lookback {setting.lookback} + horizon {setting.horizon} exceed the longest series "
                f"({longest} rows); lower data.lookback or data.horizon",
            )
        self.by_setting[setting] = {
            split: self._cut(self.holdout, self.codes, code, setting) for code, split in enumerate(SPLITS)
        }
        self.folds_by_setting[setting] = [
            {split: self._cut(scaled, codes, code, setting, fold=k) for code, split in enumerate(SPLITS[:2])}
            for k, (codes, scaled) in enumerate(zip(self.fold_codes, self.fold_scaled, strict=True))
        ]

    def inverse_targets(self, y: np.ndarray, fold: int | None = None) -> np.ndarray:
        """Scaled forecast targets (..., targets) back on the original scale (of fold `fold`'s scaler)."""
        scaler = self.scaler if fold is None else self.fold_scaled[fold].scaler
        return unlog_targets(scaler.inverse(y, self.target_index), self.target_transform)

    def window_frame(self, cfg: DataConfig) -> dict[str, Any] | None:
        """The model's `WindowFrame` settings for `cfg`'s window_norm and target_transform, and where the targets
        are among the inputs (forecast; None for classify). Raises DataError when diff or log_diff is asked for a
        target that is not an input."""
        difference = cfg.target_transform in ("diff", "log_diff")
        if self.task == "classify":
            return None
        n_inputs = len(self.input_index)
        targets = [i for i in self.target_index if i < n_inputs]
        if difference and len(targets) < len(self.target_index):
            raise DataError(
                "data.target_transform",
                f"{cfg.target_transform} adds the predicted changes to each window's last target value, so every "
                f"target must be an input; add {self.target_columns} to data.features or use none or log",
            )
        return {
            "window_norm": cfg.window_norm,
            "difference": difference,
            "target_inputs": targets if len(targets) == len(self.target_index) else [],
            "norm_inputs": [i for i in range(n_inputs) if self.scaled[i]],
        }

    def class_counts(self) -> dict[str, list[int]]:
        """Classify: sequences of each class id in each split."""
        return {
            split: np.bincount(self.labels[self.codes == code], minlength=self.n_classes).tolist()
            for code, split in enumerate(SPLITS)
        }

    def split_sizes(self) -> dict[str, int]:
        """Rows (forecast) or sequences (classify) in each split."""
        return {split: int((self.codes == code).sum()) for code, split in enumerate(SPLITS)}

    def report(self) -> list[str]:
        """Lines describing the prepared data: split sizes, gaps, dropped rows, class balance."""
        sizes = self.split_sizes()
        unit = "sequences" if self.task == "classify" else "rows"
        lines = [
            f"{unit} train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']}, "
            f"{len(self.input_index)} inputs ({', '.join(self.input_columns[:8])}"
            f"{', ...' if len(self.input_index) > 8 else ''})"
        ]
        if self.task == "forecast" and len(self.offsets) > 2:
            lines.append(f"{len(self.offsets) - 1} series")
        if self.fold_codes:
            lines.append(f"{len(self.fold_codes)} cross-validation folds")
        return lines + self.notes

    def preprocessing_state(self) -> dict[str, Any]:
        """Everything inference needs to turn raw rows into model inputs (see `lstm_ray.data.inference`);
        plain JSON-ready data, saved with checkpoints and logged models."""
        return {
            "task": self.task,
            "columns": self.columns,
            "inputs": self.input_columns,
            "targets": self.target_columns if self.task == "forecast" else list(self.row_spec.targets),
            "scaler": self.scaler.state(),
            "rows": asdict(self.row_spec),
            "features": asdict(self.feature_spec),
            "embeddings": self.embeddings,
            "class_names": self.class_names,
            "max_length": self.max_length if self.task == "classify" else None,
            "target_transform": self.target_transform,
        }

    def _key(self, setting: WindowSetting) -> WindowSetting:
        return WindowSetting(0, 0, 0) if self.task == "classify" else setting

    def _cut(self, scaled: Scaled, codes: np.ndarray, code: int, setting: WindowSetting, fold: int | None = None):
        if self.task == "classify":
            chosen = np.flatnonzero(codes == code)
            sequences = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in chosen]
            return padded_sequences(scaled.values, self.input_index, sequences, self.labels[chosen], self.max_length)
        runs = split_runs(codes, self.offsets).get(code, [])
        windows = forecast_windows(
            scaled.values, self.input_index, self.target_index, runs, setting, scaled.target_ok, self.observed
        )
        if len(windows) == 0:
            where = SPLITS[code] + (f" part of fold {fold}" if fold is not None else " split")
            key = "data.folds" if fold is not None else "data.lookback"
            raise DataError(
                key,
                f"the {where} has no window for lookback {setting.lookback} + horizon {setting.horizon}; "
                f"lower data.lookback or data.horizon{', or data.folds' if fold is not None else ''}, "
                "or use a longer series",
            )
        return windows


def prepared_key(cfg: DataConfig) -> tuple[str, ...]:
    return tuple(getattr(cfg, key.removeprefix("data.")) for key in PREPARED_KEYS)
