"""Raw rows to model inputs at prediction time, from the preprocessing state saved with a model.

    state = data.preprocessing_state()               # or json.load(open("model_preprocessing.json"))
    inputs = model_inputs(raw_table, state, lookback=52)
    model(torch.tensor(inputs.x))                     # classify: model(x, inputs.lengths)

The same steps as training, with every statistic taken from `state`: rows arranged per id and time, history
rows for lags spent, categories by the training vocabulary (unknown ones as "unknown"), gaps filled within
each series as `missing` says, and the training scaler. Nothing is fitted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lstm_ray.data.features import FeatureSpec, encode_rows
from lstm_ray.data.layout import Rows, RowSpec, arrange_rows
from lstm_ray.data.preprocess import Scaler, fill_missing, log_targets
from lstm_ray.errors import DataError

__all__ = ["ModelInputs", "model_inputs", "transform_raw"]


@dataclass
class ModelInputs:
    """What a model reads for a batch of raw rows: one entry per series (forecast) or sequence (classify)."""

    x: np.ndarray  # forecast: (series, lookback, inputs); classify: (sequences, max_length, inputs), zero-padded
    lengths: np.ndarray  # (N,) int64: lookback for every forecast window; the true length of each sequence
    ids: list[Any]  # the id_column value of each entry (0 when the data has no id column)


def transform_raw(table: Any, state: dict[str, Any]) -> np.ndarray:
    """Rows x inputs float32: the scaled model inputs of every raw row, in (id, time) order, after the rows
    `missing: drop` and lag history remove. `table` is a pyarrow Table or a pandas DataFrame; targets and
    labels may be absent (forecast targets are needed when they are inputs or have lags).
    Raises DataError when a needed column is missing or unusable."""
    rows, encoded = _encode(table, state)
    return _scaled_inputs(rows, encoded, state)


def model_inputs(table: Any, state: dict[str, Any], lookback: int | None = None) -> ModelInputs:
    """The model's batch for raw rows: for forecast, the last `lookback` rows of each series (the window
    that predicts what comes next); for classify, each sequence padded to the training length (longer ones
    keep their last steps). Raises DataError when a series has fewer than `lookback` usable rows."""
    rows, encoded = _encode(table, state)
    values = _scaled_inputs(rows, encoded, state)
    ranges = rows.series
    if state["task"] == "classify":
        steps = int(state["max_length"])
        x = np.zeros((len(ranges), steps, values.shape[1]), dtype=np.float32)
        lengths = np.array([min(end - start, steps) for start, end in ranges], dtype=np.int64)
        for i, ((_, end), n) in enumerate(zip(ranges, lengths.tolist(), strict=True)):
            x[i, :n] = values[end - n : end]
        return ModelInputs(x, lengths, rows.series_ids)
    if lookback is None or lookback < 1:
        raise DataError("lookback", f"forecast inputs need the model's lookback (a whole number >= 1), got {lookback}")
    short = [sid for sid, (start, end) in zip(rows.series_ids, ranges, strict=True) if end - start < lookback]
    if short:
        raise DataError("data.lookback", f"series {short[0]!r} has fewer than lookback {lookback} usable rows")
    x = np.stack([values[end - lookback : end] for _, end in ranges]).astype(np.float32)
    return ModelInputs(x, np.full(len(ranges), lookback, dtype=np.int64), rows.series_ids)


def _encode(table: Any, state: dict[str, Any]):
    table = _as_table(table)
    row_spec = RowSpec(**state["rows"])
    rows = arrange_rows(table, row_spec, labelled=False)
    return rows, encode_rows(rows, row_spec, FeatureSpec(**state["features"]))


def _scaled_inputs(rows: Rows, encoded, state: dict[str, Any]) -> np.ndarray:
    n_inputs = len(state["inputs"])
    if encoded.columns[:n_inputs] != state["inputs"]:
        raise DataError("data.features", f"raw rows give inputs {encoded.columns[:n_inputs]}, not {state['inputs']}")
    values = log_targets(encoded.values[:, :n_inputs], state["inputs"], _target_inputs(state), _transform(state))
    filled = fill_missing(values, state["rows"]["missing"], state["inputs"], rows.series)
    scaler = Scaler.from_state(state["scaler"])
    scaled = (filled - scaler.shift[:n_inputs]) / scaler.scale[:n_inputs]
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


def _target_inputs(state: dict[str, Any]) -> list[str]:
    return [c for c in state["targets"] if c in state["inputs"]] if state["task"] == "forecast" else []


def _transform(state: dict[str, Any]) -> str:
    return state.get("target_transform", "none")  # models saved before target transforms existed: none


def _as_table(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "columns") and hasattr(table, "to_dict"):  # a pandas DataFrame
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(f"expected a pyarrow Table or a pandas DataFrame, got {type(table).__name__}")
