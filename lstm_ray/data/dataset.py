"""From `data:` config to model-ready windows: read, pick columns, clean, split, scale, window.

    data = prepare_dataset(cfg.data, settings=[WindowSetting(52, 1, 1)])
    data.windows(WindowSetting(52, 1, 1))["train"].x.shape  # (windows, 52, features)

Runs once on the driver; the result goes to the Ray object store and trials read it zero-copy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_ray.config import WINDOW_KEYS, DataConfig, ExperimentConfig
from lstm_ray.data.preprocess import Scaler, fill_missing
from lstm_ray.data.sources import BUILTIN_PREFIX, read_table
from lstm_ray.data.windows import (
    SPLITS,
    Windows,
    WindowSetting,
    check_enough_rows,
    make_windows,
    split_bounds,
)
from lstm_ray.errors import DataError


@dataclass
class PreparedData:
    """Scaled rows, their split, and the windows of every window setting a sweep can ask for."""

    columns: list[str]  # columns of `values`, in order
    input_index: list[int]  # which columns the model reads
    target_index: list[int]  # which columns it predicts
    values: np.ndarray  # rows x columns, scaled, float32
    bounds: dict[str, tuple[int, int]]
    scaler: Scaler
    by_setting: dict[WindowSetting, dict[str, Windows]] = field(default_factory=dict)

    @property
    def input_columns(self) -> list[str]:
        return [self.columns[i] for i in self.input_index]

    @property
    def target_columns(self) -> list[str]:
        return [self.columns[i] for i in self.target_index]

    def windows(self, setting: WindowSetting) -> dict[str, Windows]:
        if setting not in self.by_setting:
            self.add_setting(setting)
        return self.by_setting[setting]

    def add_setting(self, setting: WindowSetting) -> None:
        check_enough_rows(len(self.values), self.bounds, setting)
        self.by_setting[setting] = {
            split: make_windows(self.values, self.input_index, self.target_index, self.bounds[split], setting)
            for split in SPLITS
        }

    def inverse_targets(self, y: np.ndarray) -> np.ndarray:
        """Scaled targets (..., targets) back on the original scale."""
        return self.scaler.inverse(y, self.target_index)

    def preprocessing_state(self) -> dict:
        """What inference needs to scale raw rows like training did (saved with checkpoints and models)."""
        return {
            "columns": self.columns,
            "inputs": self.input_columns,
            "targets": self.target_columns,
            "scaler": self.scaler.state(),
        }


def prepare_dataset(cfg: DataConfig, settings: list[WindowSetting] | None = None) -> PreparedData:
    """Read and prepare `cfg.source`; build windows for each of `settings` (default: the config's own)."""
    table = read_table(cfg.source)
    targets, inputs, time_column = resolve_columns(cfg, table)
    columns = list(dict.fromkeys(inputs + targets))
    if time_column:
        table = _sorted_by_time(table, time_column)
    values = fill_missing(_numeric_matrix(table, columns, targets), cfg.missing, columns)
    bounds = split_bounds(len(values), cfg.val_fraction, cfg.test_fraction)
    train_rows = values[bounds["train"][0] : bounds["train"][1]]
    scaler = Scaler.fit(cfg.scaling, train_rows)
    data = PreparedData(
        columns=columns,
        input_index=[columns.index(c) for c in inputs],
        target_index=[columns.index(c) for c in targets],
        values=scaler.transform(values),
        bounds=bounds,
        scaler=scaler,
    )
    for setting in settings or [WindowSetting(cfg.lookback, cfg.horizon, cfg.stride)]:
        data.add_setting(setting)
    return data


def window_settings(cfg: ExperimentConfig) -> list[WindowSetting]:
    """Every (lookback, horizon, stride) a trial of this sweep can ask for, so windows are built once each."""
    space = cfg.parsed_space()
    options = []
    for key in WINDOW_KEYS:
        default = getattr(cfg.data, key.split(".")[1])
        options.append(list(space[key].args) if key in space else [default])
    return [WindowSetting(*combo) for combo in itertools.product(*options)]


def resolve_columns(cfg: DataConfig, table: pa.Table) -> tuple[list[str], list[str], str | None]:
    """(targets, inputs, time column), taking defaults from a builtin set and checking every name exists."""
    targets, features, time_column = cfg.targets, cfg.features, cfg.time_column
    if cfg.source.startswith(BUILTIN_PREFIX):
        from lstm_ray.data.builtin import BUILTIN_DATASETS

        known = BUILTIN_DATASETS[cfg.source.removeprefix(BUILTIN_PREFIX)]
        targets = targets or ([known.target] if isinstance(known.target, str) else list(known.target))
        features = features or known.features
        time_column = time_column or known.time_column
    if not targets:
        raise DataError("data.target", f"is required; pick a column from {', '.join(table.column_names)}")
    inputs = features or targets
    for key, names in (
        ("data.target", targets),
        ("data.features", inputs),
        ("data.time_column", [time_column]),
    ):
        for name in names:
            if name is not None and name not in table.column_names:
                raise DataError(key, f"column {name!r} not in the data; columns are {', '.join(table.column_names)}")
    return list(targets), list(inputs), time_column


def _sorted_by_time(table: pa.Table, time_column: str) -> pa.Table:
    try:
        order = pc.sort_indices(table, sort_keys=[(time_column, "ascending")])
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as err:
        raise DataError("data.time_column", f"column {time_column!r} cannot be sorted: {err}") from None
    return table.take(order)


def _numeric_matrix(table: pa.Table, columns: list[str], targets: list[str]) -> np.ndarray:
    out = np.empty((table.num_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataError(
                "data.target" if name in targets else "data.features",
                f"column {name!r} is {column.type}, not numeric; choose numeric columns",
            )
        out[:, j] = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if len(out) == 0:
        raise DataError("data.source", "the data has no rows")
    return out
