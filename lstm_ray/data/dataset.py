"""From `data:` config to model-ready arrays: read, arrange, split, encode, fill, scale, window or pad, fold.

    data = prepare_sweep_data(cfg)           # every window setting and searched preprocessing choice
    data = data.for_config(trial_cfg.data)   # a trial's own preprocessing choice
    data.windows(setting)["train"]            # Windows(x, y) (forecast) or Windows(x, y, lengths) (classify)
    data.folds(setting)[k]["val"]             # with data.validation: cv; scaled by fold k's own scaler
    data.inverse_targets(y, fold=k)           # forecast targets back on the original scale

`PreparedData` (data/prepared.py) holds the result. Runs once on the driver; windows of every setting and every
fold are built here, so trials share them through the Ray object store instead of rebuilding them.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from lstm_ray.config import PREPARED_KEYS, WINDOW_KEYS, DataConfig, ExperimentConfig
from lstm_ray.data import splits
from lstm_ray.data.baselines import naive_mae
from lstm_ray.data.columns import resolve_columns
from lstm_ray.data.features import EncodedRows, FeatureSpec, encode_rows, fit_vocabularies
from lstm_ray.data.layout import Rows, RowSpec, arrange_rows, seasonal_period
from lstm_ray.data.prepared import PreparedData, Scaled, prepared_key
from lstm_ray.data.preprocess import Scaler, fill_missing, log_targets
from lstm_ray.data.sources import read_table
from lstm_ray.data.windows import WindowSetting, split_runs
from lstm_ray.errors import DataError

__all__ = [
    "PreparedData",
    "prepare_dataset",
    "prepare_sweep_data",
    "window_settings",
]


def prepare_dataset(cfg: DataConfig, settings: list[WindowSetting] | None = None) -> PreparedData:
    """Read and prepare `cfg.source`; build windows (and folds) for each of `settings` (default: the config's).

    Every statistic (vocabularies, scaler) is fitted on training rows only: the holdout's train split, and for
    each cv fold that fold's training part. Raises DataError naming the key for any data the config cannot use.
    """
    source_notes: list[str] = []
    table = read_table(cfg.source, source_notes)
    row_spec, split_column = resolve_columns(cfg, table)
    rows = arrange_rows(table, row_spec, split_column)
    rows.notes[:0] = source_notes
    if cfg.task == "classify":
        data = _prepare_classify(cfg, rows, row_spec)
    else:
        data = _prepare_forecast(cfg, rows, row_spec)
    data.prepared_key = prepared_key(cfg)
    data.window_frame(cfg)  # a frame the data cannot take fails here, before any trial
    for setting in settings or [WindowSetting(cfg.lookback, cfg.horizon, cfg.stride)]:
        data.add_setting(setting)
    return data


def prepare_sweep_data(cfg: ExperimentConfig) -> PreparedData:
    """The data of a whole sweep: `prepare_dataset` with every window setting, and once more for each searched
    choice of the PREPARED_KEYS (held in `variants`); a trial picks its own with `for_config`."""
    settings = window_settings(cfg)
    data = prepare_dataset(cfg.data, settings)
    if cfg.model.highway and data.task == "forecast" and not data.window_frame(cfg.data)["target_inputs"]:
        raise DataError(
            "model.highway",
            f"reads the targets' own history, so every target must be an input; add {data.target_columns} "
            "to data.features or set model.highway: 0",
        )
    space = cfg.parsed_space()
    names = [key.removeprefix("data.") for key in PREPARED_KEYS]
    options = [
        list(space[key].args) if key in space else [getattr(cfg.data, name)]
        for key, name in zip(PREPARED_KEYS, names, strict=True)
    ]
    for combo in itertools.product(*options):
        variant = dataclasses.replace(cfg.data, **dict(zip(names, combo, strict=True)))
        if prepared_key(variant) != data.prepared_key:
            data.variants[prepared_key(variant)] = prepare_dataset(variant, settings)
    return data


def _prepare_forecast(cfg: DataConfig, rows: Rows, row_spec: RowSpec) -> PreparedData:
    marked = splits.marked_codes(rows.marks) if rows.marks is not None else None
    codes = splits.forecast_codes(rows.offsets, cfg.val_fraction, cfg.test_fraction, marked)
    encoded, feature_spec = _encode(cfg, rows, row_spec, codes == splits.TRAIN)
    target_index = [encoded.columns.index(t) for t in row_spec.targets]
    fold_codes = splits.forecast_folds(codes, rows.offsets, cfg.folds, cfg.scheme) if cfg.validation == "cv" else []
    targets = encoded.values[:, target_index]
    history = fill_missing(
        targets,
        cfg.missing if cfg.missing in ("interpolate", "ffill") else "ffill",
        row_spec.targets,
        _segments(codes, rows.offsets),
    )
    season = cfg.season_length or seasonal_period(rows.times, rows.offsets)
    observed = ~np.isnan(targets)
    encoded = dataclasses.replace(
        encoded, values=log_targets(encoded.values, encoded.columns, row_spec.targets, cfg.target_transform)
    )
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
        scaled=encoded.scaled,
        target_transform=cfg.target_transform,
        observed=observed,
        history=history,
        season_length=season,
        naive_mae=naive_mae(history, observed, codes, rows.offsets, season),
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
        scaled=encoded.scaled,
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
