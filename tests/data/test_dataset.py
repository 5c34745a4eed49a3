from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_dataset, window_settings
from lstm_ray.data.windows import WindowSetting
from lstm_ray.errors import DataError


def series_table(n: int = 200) -> pa.Table:
    t = np.arange(n)
    return pa.table({"t": t[::-1].copy(), "y": np.sin(t / 5.0)[::-1].copy(), "x": np.cos(t / 5.0)[::-1].copy()})


def data_config(tiny_raw: dict, source: str, **data):
    tiny_raw["data"] = {"source": source, "target": "y", "time_column": "t", "lookback": 5, **data}
    return parse_config(tiny_raw).data


def test_reads_parquet_csv_and_feather_alike(tmp_path, tiny_raw):
    table = series_table()
    pq.write_table(table, tmp_path / "s.parquet")
    pacsv.write_csv(table, tmp_path / "s.csv")
    pa.feather.write_feather(table, tmp_path / "s.feather")
    prepared = [
        prepare_dataset(data_config(tiny_raw, str(tmp_path / f"s.{ext}"))) for ext in ("parquet", "csv", "feather")
    ]
    for other in prepared[1:]:
        assert np.allclose(other.values, prepared[0].values)


def test_rows_are_sorted_by_the_time_column(tmp_path, tiny_raw):
    pq.write_table(series_table(), tmp_path / "s.parquet")
    data = prepare_dataset(data_config(tiny_raw, str(tmp_path / "s.parquet"), scaling="none"))
    assert np.allclose(data.values[:5, 0], np.sin(np.arange(5) / 5.0))


def test_scaling_uses_training_rows_only(tmp_path, tiny_raw):
    table = series_table()
    pq.write_table(table, tmp_path / "a.parquet")
    changed = table.set_column(1, "y", pa.array(np.where(table["t"].to_numpy() >= 150, 1e6, table["y"].to_numpy())))
    pq.write_table(changed, tmp_path / "b.parquet")
    a = prepare_dataset(data_config(tiny_raw, str(tmp_path / "a.parquet")))
    b = prepare_dataset(data_config(tiny_raw, str(tmp_path / "b.parquet")))
    assert a.bounds["train"] == (0, 140)
    assert np.allclose(a.scaler.shift, b.scaler.shift) and np.allclose(a.scaler.scale, b.scaler.scale)
    train_values = a.values[:140, a.target_index[0]]
    assert abs(train_values.mean()) < 1e-5 and abs(train_values.std() - 1) < 1e-4


def test_features_default_to_the_target_and_can_add_columns(tmp_path, tiny_raw):
    pq.write_table(series_table(), tmp_path / "s.parquet")
    alone = prepare_dataset(data_config(tiny_raw, str(tmp_path / "s.parquet")))
    both = prepare_dataset(data_config(tiny_raw, str(tmp_path / "s.parquet"), features=["x", "y"]))
    assert alone.input_columns == ["y"]
    assert both.input_columns == ["x", "y"] and both.target_columns == ["y"]
    assert both.windows(WindowSetting(5, 1, 1))["train"].x.shape[-1] == 2


def test_builtin_set_brings_its_default_columns(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:co2", "lookback": 8}
    data = prepare_dataset(parse_config(tiny_raw).data)
    assert data.target_columns == ["co2"] and not np.isnan(data.values).any()


def test_every_searched_window_setting_is_built_once(tiny_raw):
    tiny_raw["search"]["space"] = {"data.lookback": {"choice": [4, 8]}, "data.horizon": {"choice": [1, 3]}}
    cfg = parse_config(tiny_raw)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    assert set(data.by_setting) == {WindowSetting(lb, h, 1) for lb in (4, 8) for h in (1, 3)}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"target": "nope"}, "data.target: column 'nope' not in the data"),
        ({"features": ["nope"]}, "data.features: column 'nope'"),
        ({"lookback": 190}, "data.lookback"),
    ],
)
def test_bad_data_settings_are_named(tmp_path, tiny_raw, data, expected):
    pq.write_table(series_table(), tmp_path / "s.parquet")
    with pytest.raises(DataError, match=expected):
        prepare_dataset(data_config(tiny_raw, str(tmp_path / "s.parquet"), **data))


def test_unknown_file_format_is_named(tmp_path, tiny_raw):
    with pytest.raises(DataError, match="cannot tell the format"):
        prepare_dataset(data_config(tiny_raw, str(tmp_path / "s.xlsx")))
