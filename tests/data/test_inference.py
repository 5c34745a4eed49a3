"""Raw rows at prediction time go through the saved preprocessing exactly as the training rows did."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_ray.config import parse_config
from lstm_ray.data.builtin import load_builtin
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.data.inference import model_inputs, transform_raw
from lstm_ray.data.synthetic import noisy_seasonal
from lstm_ray.data.windows import WindowSetting
from lstm_ray.errors import DataError


def shops_table() -> pa.Table:
    """Two hourly series with a category, gaps inside the training part, and rows out of order."""
    parts = []
    for shop, seed in (("north", 1), ("south", 2)):
        table = noisy_seasonal(n_rows=150, seed=seed)
        y = table.column("y").to_numpy().copy()
        y[[20, 21, 60]] = np.nan
        table = table.set_column(1, "y", pa.array(y))
        kinds = pa.array(np.array(["a", "b", "c", "d"])[np.arange(150) % 4])
        parts.append(table.append_column("shop", pa.array([shop] * 150)).append_column("kind", kinds))
    table = pa.concat_tables(parts)
    return table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))


def prepared(tiny_raw, tmp_path, table: pa.Table, **data):
    pq.write_table(table, tmp_path / "rows.parquet")
    tiny_raw["data"] = {"source": str(tmp_path / "rows.parquet"), "lookback": 6, **data}
    if data.get("task") == "classify":
        tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    return prepare_dataset(parse_config(tiny_raw).data)


FORECAST_OPTIONS = [
    {"scaling": "standard", "missing": "interpolate"},
    {"scaling": "robust", "missing": "mask", "categorical": ["kind"], "categorical_encoding": "index"},
    {"scaling": "minmax", "missing": "ffill", "categorical": ["kind"], "calendar": ["hour", "weekday"]},
    {"scaling": "standard", "missing": "drop", "lags": [1, 24], "differences": [1], "features": ["x", "y"]},
]


@pytest.mark.parametrize("options", FORECAST_OPTIONS)
def test_transform_raw_reproduces_the_prepared_inputs(tmp_path, tiny_raw, options):
    table = shops_table()
    data = prepared(tiny_raw, tmp_path, table, target="y", time_column="t", id_column="shop", **options)
    state = json.loads(json.dumps(data.preprocessing_state()))  # it must survive being saved as JSON
    inputs = transform_raw(table, state)
    assert inputs.dtype == np.float32
    np.testing.assert_allclose(inputs, data.values[:, data.input_index], atol=1e-6)


def test_transform_raw_takes_a_pandas_frame_without_the_target_column(tmp_path, tiny_raw):
    table = shops_table()
    data = prepared(tiny_raw, tmp_path, table, target="y", features=["x"], time_column="t", id_column="shop")
    frame = table.drop_columns(["y"]).to_pandas()
    np.testing.assert_allclose(transform_raw(frame, data.preprocessing_state()), data.values[:, [0]], atol=1e-6)


def test_model_inputs_are_the_last_window_of_each_series(tmp_path, tiny_raw):
    table = shops_table()
    data = prepared(tiny_raw, tmp_path, table, target="y", time_column="t", id_column="shop", calendar=["hour"])
    inputs = model_inputs(table, data.preprocessing_state(), lookback=6)
    assert inputs.ids == ["north", "south"] and inputs.x.shape == (2, 6, 3)
    for i, end in enumerate(data.offsets[1:]):
        np.testing.assert_allclose(inputs.x[i], data.values[end - 6 : end, data.input_index], atol=1e-6)
    with pytest.raises(DataError, match="fewer than lookback 500"):
        model_inputs(table, data.preprocessing_state(), lookback=500)


def test_unknown_categories_at_prediction_time_encode_as_unknown(tmp_path, tiny_raw):
    table = shops_table()
    data = prepared(tiny_raw, tmp_path, table, target="y", time_column="t", id_column="shop", categorical=["kind"])
    renamed = table.set_column(table.schema.get_field_index("kind"), "kind", pa.array(["zzz"] * table.num_rows))
    inputs = transform_raw(renamed, data.preprocessing_state())
    assert data.input_columns[1:] == ["kind=a", "kind=b", "kind=c", "kind=d"] and not inputs[:, 1:].any()


def test_classify_inputs_from_raw_rows_match_the_prepared_sequences(tmp_path, tiny_raw):
    table = load_builtin("japanese_vowels")
    data = prepared(tiny_raw, tmp_path, table, source="builtin:japanese_vowels", task="classify", scaling="robust")
    raw = table.drop_columns(["label", "split"])
    inputs = model_inputs(raw, data.preprocessing_state())
    assert inputs.x.shape == (640, 29, 12) and inputs.ids == list(range(640))
    for split, windows in data.windows(WindowSetting(1, 1, 1)).items():
        chosen = np.flatnonzero(data.codes == ["train", "val", "test"].index(split))
        np.testing.assert_array_equal(inputs.lengths[chosen], windows.lengths)
        np.testing.assert_allclose(inputs.x[chosen], windows.x, atol=1e-6)
