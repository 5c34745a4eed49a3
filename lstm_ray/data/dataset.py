"""From `data:` config to model-ready arrays: read, arrange, split, encode, fill, scale, window or pad, fold.

    data = prepare_sweep_data(cfg)           # every window setting and searched preprocessing choice
    data = data.for_config(trial_cfg.data)   # a trial's own preprocessing choice
    data.windows(setting)["train"]            # Windows(x, y) (forecast) or Windows(x, y, lengths) (classify)
    data.folds(setting)[k]["val"]             # with data.validation: cv; scaled by fold k's own scaler
    data.inverse_targets(y, fold=k)           # forecast targets back on the original scale

Runs once on the driver; windows of every setting and every fold are built here, so trials share them
through the Ray object store instead of rebuilding them.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstm_ray.config import PREPARED_KEYS, WINDOW_KEYS, DataConfig, ExperimentConfig
from lstm_ray.data import splits
from lstm_ray.data.columns import resolve_columns
from lstm_ray.data.features import EncodedRows, FeatureSpec, encode_rows, fit_vocabularies
from lstm_ray.data.layout import Rows, RowSpec, arrange_rows
from lstm_ray.data.preprocess import Scaler, fill_missing
from lstm_ray.data.sources import read_table
from lstm_ray.data.windows import (
    SPLITS,
    Windows,
    WindowSetting,
    forecast_windows,
    padded_sequences,
    split_runs,
)
from lstm_ray.errors import DataError

__all__ = [
    "PreparedData",
    "prepare_dataset",
    "prepare_sweep_data",
    "window_settings",
]


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
        key = _prepared_key(cfg)
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
        return scaler.inverse(y, self.target_index)

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
        }

    def _key(self, setting: WindowSetting) -> WindowSetting:
        return WindowSetting(0, 0, 0) if self.task == "classify" else setting

    def _cut(self, scaled: Scaled, codes: np.ndarray, code: int, setting: WindowSetting, fold: int | None = None):
        if self.task == "classify":
            chosen = np.flatnonzero(codes == code)
            sequences = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in chosen]
            return padded_sequences(scaled.values, self.input_index, sequences, self.labels[chosen], self.max_length)
        runs = split_runs(codes, self.offsets).get(code, [])
        windows = forecast_windows(scaled.values, self.input_index, self.target_index, runs, setting, scaled.target_ok)
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


def prepare_dataset(cfg: DataConfig, settings: list[WindowSetting] | None = None) -> PreparedData:
    """Read and prepare `cfg.source`; build windows (and folds) for each of `settings` (default: the config's).

    Every statistic (vocabularies, scaler) is fitted on training rows only: the holdout's train split, and for
    each cv fold that fold's training part. Raises DataError naming the key for any data the config cannot use.
    """
    table = read_table(cfg.source)
    row_spec, split_column = resolve_columns(cfg, table)
    rows = arrange_rows(table, row_spec, split_column)
    if cfg.task == "classify":
        data = _prepare_classify(cfg, rows, row_spec)
    else:
        data = _prepare_forecast(cfg, rows, row_spec)
    data.prepared_key = _prepared_key(cfg)
    for setting in settings or [WindowSetting(cfg.lookback, cfg.horizon, cfg.stride)]:
        data.add_setting(setting)
    return data


def prepare_sweep_data(cfg: ExperimentConfig) -> PreparedData:
    """The data of a whole sweep: `prepare_dataset` with every window setting, and once more for each searched
    choice of the PREPARED_KEYS (held in `variants`); a trial picks its own with `for_config`."""
    settings = window_settings(cfg)
    data = prepare_dataset(cfg.data, settings)
    space = cfg.parsed_space()
    names = [key.removeprefix("data.") for key in PREPARED_KEYS]
    options = [
        list(space[key].args) if key in space else [getattr(cfg.data, name)]
        for key, name in zip(PREPARED_KEYS, names, strict=True)
    ]
    for combo in itertools.product(*options):
        variant = dataclasses.replace(cfg.data, **dict(zip(names, combo, strict=True)))
        if _prepared_key(variant) != data.prepared_key:
            data.variants[_prepared_key(variant)] = prepare_dataset(variant, settings)
    return data


def _prepared_key(cfg: DataConfig) -> tuple[str, ...]:
    return tuple(getattr(cfg, key.removeprefix("data.")) for key in PREPARED_KEYS)


def _prepare_forecast(cfg: DataConfig, rows: Rows, row_spec: RowSpec) -> PreparedData:
    marked = splits.marked_codes(rows.marks) if rows.marks is not None else None
    codes = splits.forecast_codes(rows.offsets, cfg.val_fraction, cfg.test_fraction, marked)
    encoded, feature_spec = _encode(cfg, rows, row_spec, codes == splits.TRAIN)
    target_index = [encoded.columns.index(t) for t in row_spec.targets]
    fold_codes = splits.forecast_folds(codes, rows.offsets, cfg.folds, cfg.scheme) if cfg.validation == "cv" else []
    return PreparedData(
        task="forecast",
        columns=encoded.columns,
        input_index=list(range(encoded.n_inputs)),
        target_index=target_index,
        offsets=rows.offsets,
        codes=codes,
        holdout=_scale(cfg, encoded, codes, rows.offsets, target_index),
        row_spec=row_spec,
        feature_spec=feature_spec,
        embeddings=encoded.embeddings,
        fold_codes=fold_codes,
        fold_scaled=[_scale(cfg, encoded, fold, rows.offsets, target_index) for fold in fold_codes],
        notes=rows.notes,
    )


def _prepare_classify(cfg: DataConfig, rows: Rows, row_spec: RowSpec) -> PreparedData:
    starts = rows.offsets[:-1]
    class_names, row_labels = np.unique(rows.labels, return_inverse=True)
    labels = _per_sequence(row_labels, rows.offsets, "data.target", "label")
    if len(class_names) < 2:
        raise DataError(
            "data.target",
            f"column {row_spec.targets[0]!r} has only one class ({class_names[0]!r}); classify needs two or more",
        )
    marked = None
    if rows.marks is not None:
        marked = _per_sequence(splits.marked_codes(rows.marks), rows.offsets, "data.split_column", "split mark")
    codes = splits.classify_codes(labels, cfg.val_fraction, cfg.test_fraction, cfg.seed, marked)
    row_codes = np.repeat(codes, np.diff(rows.offsets))
    encoded, feature_spec = _encode(cfg, rows, row_spec, row_codes == splits.TRAIN)
    fold_codes = splits.classify_folds(codes, labels, cfg.folds, cfg.seed) if cfg.validation == "cv" else []
    sequences = np.stack([starts, rows.offsets[1:]], axis=1)
    data = PreparedData(
        task="classify",
        columns=encoded.columns,
        input_index=list(range(encoded.n_inputs)),
        target_index=[],
        offsets=rows.offsets,
        codes=codes,
        holdout=_scale(cfg, encoded, row_codes, sequences, []),
        row_spec=row_spec,
        feature_spec=feature_spec,
        embeddings=encoded.embeddings,
        labels=labels,
        class_names=class_names.tolist(),
        fold_codes=fold_codes,
        fold_scaled=[
            _scale(cfg, encoded, np.repeat(fold, np.diff(rows.offsets)), sequences, []) for fold in fold_codes
        ],
        notes=rows.notes,
    )
    if len(np.unique(labels[codes == splits.TRAIN])) < 2:
        raise DataError("data.split_column", "the train split holds only one class; mark sequences of every class")
    data.notes.append(_balance_note(data))
    return data


def _per_sequence(values: np.ndarray, offsets: np.ndarray, key: str, what: str) -> np.ndarray:
    """The value of each sequence's rows. Raises DataError when a sequence's rows disagree."""
    first = values[offsets[:-1]]
    differs = values != np.repeat(first, np.diff(offsets))
    if differs.any():
        row = int(np.flatnonzero(differs)[0])
        raise DataError(key, f"sequences must have one {what}, but row {row} differs from its sequence's first row")
    return first


def _balance_note(data: PreparedData) -> str:
    train = data.class_counts()["train"]
    ratio = max(train) / max(1, min(train))
    counts = ", ".join(f"{name}: {n}" for name, n in zip(data.class_names, train, strict=True))
    return f"classes in train ({counts}); largest / smallest = {ratio:.1f}" + (" (imbalanced)" if ratio > 3 else "")


def _encode(cfg: DataConfig, rows: Rows, row_spec: RowSpec, train_rows: np.ndarray) -> tuple[EncodedRows, FeatureSpec]:
    """Input columns, with category vocabularies fitted on `train_rows` (shared by every fold, so all folds
    have the same inputs). Numeric inputs with a gap anywhere get a flag column under missing: mask."""
    numeric = [*row_spec.numeric, *row_spec.history_columns]
    gaps = np.isnan(rows.values[:, [rows.columns.index(c) for c in numeric]]).any(axis=0) if numeric else []
    feature_spec = FeatureSpec(
        categorical_encoding=cfg.categorical_encoding,
        vocabularies=fit_vocabularies(rows, train_rows, row_spec.categorical),
        calendar=list(cfg.calendar),
        mask_columns=[c for c, gap in zip(numeric, gaps, strict=True) if gap] if cfg.missing == "mask" else [],
    )
    return encode_rows(rows, row_spec, feature_spec), feature_spec


def _scale(
    cfg: DataConfig, encoded: EncodedRows, row_codes: np.ndarray, segments_of: np.ndarray, target_index: list[int]
) -> Scaled:
    """Fill gaps within each run of one split in one series (or sequence), then scale by the TRAIN rows."""
    segments = _segments(row_codes, segments_of)
    filled = fill_missing(encoded.values, cfg.missing, encoded.columns, segments)
    scaler = Scaler.fit(cfg.scaling, filled[row_codes == splits.TRAIN], encoded.scaled)
    values = scaler.transform(filled)
    target_ok = ~np.isnan(values[:, target_index]).any(axis=1)
    return Scaled(np.nan_to_num(values, nan=0.0), scaler, target_ok)


def _segments(row_codes: np.ndarray, segments_of: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of equal code inside each series (offsets) or sequence ((N, 2) ranges)."""
    if segments_of.ndim == 2:
        return [(int(a), int(b)) for a, b in segments_of]
    return [(start, end) for runs in split_runs(row_codes, segments_of).values() for _, start, end in runs]


def window_settings(cfg: ExperimentConfig) -> list[WindowSetting]:
    """Every (lookback, horizon, stride) a trial of this sweep can ask for, so windows are built once each."""
    if cfg.data.task == "classify":
        return [WindowSetting(cfg.data.lookback, cfg.data.horizon, cfg.data.stride)]
    space = cfg.parsed_space()
    options = []
    for key in WINDOW_KEYS:
        default = getattr(cfg.data, key.split(".")[1])
        options.append(list(space[key].args) if key in space else [default])
    return [WindowSetting(*combo) for combo in itertools.product(*options)]
