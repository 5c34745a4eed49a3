"""prepare_dataset end to end: layouts, both tasks, statistics from training rows only, folds, bad data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_dataset, prepare_sweep_data, window_settings
from lstm_ray.data.splits import TRAIN, VAL
from lstm_ray.data.synthetic import noisy_seasonal, sequence_classes
from lstm_ray.data.windows import WindowSetting
from lstm_ray.errors import ConfigError, DataError

SETTING = WindowSetting(5, 1, 1)


def series_table(n: int = 200) -> pa.Table:
    t = np.arange(n)
    return pa.table({"t": t[::-1].copy(), "y": np.sin(t / 5.0)[::-1].copy(), "x": np.cos(t / 5.0)[::-1].copy()})


def data_config(tiny_raw: dict, source: str, **data):
    tiny_raw["data"] = {"source": source, "target": "y", "time_column": "t", "lookback": 5, **data}
    if data.get("task") == "classify":
        tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    return parse_config(tiny_raw).data


def write(tmp_path, table: pa.Table, name: str = "s.parquet") -> str:
    pq.write_table(table, tmp_path / name)
    return str(tmp_path / name)


def test_rows_are_sorted_by_the_time_column(tmp_path, tiny_raw):
    data = prepare_dataset(data_config(tiny_raw, write(tmp_path, series_table()), scaling="none"))
    assert np.allclose(data.values[:5, 0], np.sin(np.arange(5) / 5.0))


def test_scaling_uses_training_rows_only(tmp_path, tiny_raw):
    table = series_table()
    changed = table.set_column(1, "y", pa.array(np.where(table["t"].to_numpy() >= 150, 1e6, table["y"].to_numpy())))
    a = prepare_dataset(data_config(tiny_raw, write(tmp_path, table, "a.parquet")))
    b = prepare_dataset(data_config(tiny_raw, write(tmp_path, changed, "b.parquet")))
    assert a.split_sizes() == {"train": 140, "val": 30, "test": 30}
    assert np.allclose(a.scaler.shift, b.scaler.shift) and np.allclose(a.scaler.scale, b.scaler.scale)
    train_values = a.values[:140, a.target_index[0]]
    assert abs(train_values.mean()) < 1e-5 and abs(train_values.std() - 1) < 1e-4


def test_features_default_to_the_target_and_can_add_columns(tmp_path, tiny_raw):
    source = write(tmp_path, series_table())
    alone = prepare_dataset(data_config(tiny_raw, source))
    both = prepare_dataset(data_config(tiny_raw, source, features=["x", "y"]))
    assert alone.input_columns == ["y"]
    assert both.input_columns == ["x", "y"] and both.target_columns == ["y"]
    assert both.windows(SETTING)["train"].x.shape[-1] == 2


def test_builtin_set_brings_its_default_columns(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:co2", "lookback": 8}
    data = prepare_dataset(parse_config(tiny_raw).data)
    assert data.target_columns == ["co2"] and not np.isnan(data.values).any()


def test_every_searched_window_setting_is_built_once(tiny_raw):
    tiny_raw["search"]["space"] = {"data.lookback": {"choice": [4, 8]}, "data.stride": {"choice": [1, 3]}}
    cfg = parse_config(tiny_raw)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    assert set(data.by_setting) == {WindowSetting(lb, 2, s) for lb in (4, 8) for s in (1, 3)}
    first = data.windows(WindowSetting(8, 2, 3))["train"]
    assert data.windows(WindowSetting(8, 2, 3))["train"] is first  # shared, not rebuilt


def test_each_searched_preprocessing_choice_is_prepared_once_and_picked_per_trial(tiny_raw):
    tiny_raw["search"]["space"] = {
        "data.scaling": {"choice": ["standard", "robust"]},
        "data.missing": {"choice": ["interpolate", "mask"]},
        "data.lookback": {"choice": [4, 8]},
    }
    cfg = parse_config(tiny_raw)
    data = prepare_sweep_data(cfg)
    assert len(data.variants) == 3 and data.prepared_key == ("standard", "interpolate", "onehot", "none")
    for scaling in ("standard", "robust"):
        for missing in ("interpolate", "mask"):
            trial = parse_config(tiny_raw | {"data": tiny_raw["data"] | {"scaling": scaling, "missing": missing}})
            chosen = data.for_config(trial.data)
            assert chosen.scaler.kind == scaling and ("co2_missing" in chosen.input_columns) == (missing == "mask")
            assert set(chosen.by_setting) == {WindowSetting(4, 2, 1), WindowSetting(8, 2, 1)}


def test_a_searched_preprocessing_key_needs_a_finite_set(tiny_raw):
    tiny_raw["search"]["space"] = {"data.scaling": {"uniform": [0, 1]}}
    with pytest.raises(ConfigError, match="search.space.data.scaling"):
        parse_config(tiny_raw)


def test_many_series_in_one_long_table_are_split_and_windowed_apart(tmp_path, tiny_raw):
    a, b = noisy_seasonal(n_rows=100, seed=1), noisy_seasonal(n_rows=60, seed=2)
    table = pa.concat_tables(
        [a.append_column("shop", pa.array(["a"] * 100)), b.append_column("shop", pa.array(["b"] * 60))]
    )
    data = prepare_dataset(data_config(tiny_raw, write(tmp_path, table), target="y", time_column="t", id_column="shop"))
    assert data.offsets.tolist() == [0, 100, 160]
    assert data.split_sizes() == {"train": 70 + 42, "val": 15 + 9, "test": 15 + 9}
    windows = data.windows(SETTING)
    assert len(windows["train"]) == (70 - 5) + (42 - 5)  # no window spans the two series
    assert len(windows["test"]) == 15 + 9


def test_split_column_rows_keep_their_split(tmp_path, tiny_raw):
    table = series_table(100).sort_by("t")
    marks = ["train"] * 60 + ["val"] * 20 + ["test"] * 20
    data = prepare_dataset(
        data_config(tiny_raw, write(tmp_path, table.append_column("part", pa.array(marks))), split_column="part")
    )
    assert data.split_sizes() == {"train": 60, "val": 20, "test": 20}


def test_missing_mask_adds_a_flag_and_drops_windows_with_unknown_targets(tmp_path, tiny_raw):
    y = np.arange(100, dtype=float)
    y[[10, 50]] = np.nan
    table = pa.table({"t": np.arange(100), "y": y})
    data = prepare_dataset(data_config(tiny_raw, write(tmp_path, table), missing="mask"))
    assert data.input_columns == ["y", "y_missing"]
    train = data.windows(SETTING)["train"]
    assert len(train) == 70 - 5 - 2  # the windows whose target is row 10 or row 50 are left out
    assert not np.isnan(train.x).any() and train.x[:, :, 1].sum() == 10  # each gap is in five windows' inputs


def test_categorical_and_calendar_inputs_are_not_scaled(tmp_path, tiny_raw):
    table = noisy_seasonal(n_rows=120).append_column("kind", pa.array(["a", "b", "c"] * 40))
    data = prepare_dataset(
        data_config(tiny_raw, write(tmp_path, table), categorical=["kind"], calendar=["hour"], scaling="minmax")
    )
    assert data.input_columns == ["y", "kind=a", "kind=b", "kind=c", "hour_sin", "hour_cos"]
    assert set(np.unique(data.values[:, 1:4])) == {0.0, 1.0}
    assert data.scaler.scale[1:].tolist() == [1.0] * 5


def test_cv_folds_are_scaled_by_their_own_training_rows(tmp_path, tiny_raw):
    table = noisy_seasonal(n_rows=300, trend=1.0)
    source = write(tmp_path, table)
    data = prepare_dataset(data_config(tiny_raw, source, target="y", time_column="t", validation="cv", folds=3))
    y = table.column("y").to_numpy()
    for codes, scaled in zip(data.fold_codes, data.fold_scaled, strict=True):
        train = y[codes == TRAIN]
        assert np.isclose(scaled.scaler.shift[0], train.mean()) and np.isclose(scaled.scaler.scale[0], train.std())
        assert np.flatnonzero(codes == TRAIN).max() < np.flatnonzero(codes == VAL).min()
    folds = data.folds(SETTING)
    assert [set(f) for f in folds] == [{"train", "val"}] * 3
    rising = [data.inverse_targets(f["val"].y, fold=k).mean() for k, f in enumerate(folds)]
    assert rising == sorted(rising)  # validation blocks walk forward in time, read on each fold's own scale


def test_classify_pads_sequences_and_reports_classes(tmp_path, tiny_raw):
    table = sequence_classes(n_sequences=60, length=12, n_classes=3, variable_length=True)
    data = prepare_dataset(
        data_config(
            tiny_raw,
            write(tmp_path, table),
            task="classify",
            target="label",
            time_column="step",
            id_column="sequence_id",
        )
    )
    assert data.n_classes == 3 and data.class_names == [0, 1, 2] and data.input_columns == ["value"]
    train = data.windows(SETTING)["train"]
    assert train.x.shape[1:] == (12, 1) and train.y.dtype == np.int64 and train.lengths.dtype == np.int64
    for i in range(len(train)):
        assert not train.x[i, train.lengths[i] :].any()  # zero padding after each sequence
    counts = data.class_counts()
    assert sum(map(sum, counts.values())) == 60 and min(counts["test"]) >= 1
    assert any(line.startswith("classes in train") for line in data.report())


def test_japanese_vowels_keeps_the_archive_split_and_carves_val_from_train(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    data = prepare_dataset(parse_config(tiny_raw).data)
    assert data.split_sizes() == {"train": 270 - 36, "val": 36, "test": 370}
    assert data.n_classes == 9 and data.max_length == 29 and len(data.input_columns) == 12


def test_classify_cv_folds_are_stratified_and_exclude_test(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify", "validation": "cv", "folds": 3}
    tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    data = prepare_dataset(parse_config(tiny_raw).data)
    folds = data.folds(SETTING)
    assert sum(len(f["val"]) for f in folds) == 270 and all(len(f["train"]) + len(f["val"]) == 270 for f in folds)
    assert all(len(np.unique(f["val"].y)) == 9 for f in folds)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"target": "nope"}, "data.target: column 'nope' not in the data"),
        ({"features": ["nope"]}, "data.features: column 'nope'"),
        ({"id_column": "nope"}, "data.id_column: column 'nope'"),
        ({"lookback": 190}, "data.lookback"),
        ({"validation": "cv", "folds": 12}, "data.folds"),
        ({"calendar": ["month"]}, "data.calendar: needs a date"),
    ],
)
def test_bad_data_settings_are_named(tmp_path, tiny_raw, data, expected):
    with pytest.raises(DataError, match=expected):
        prepare_dataset(data_config(tiny_raw, write(tmp_path, series_table()), **data))


@pytest.mark.parametrize(
    ("columns", "data", "expected"),
    [
        ({"t": [0, 1, 2], "y": ["a", "b", "c"]}, {}, "data.target: column 'y' is string, not numeric"),
        ({"t": [0, 1, 2], "y": [1.0, 2.0, 3.0], "x": [None, None, None]}, {"features": ["x"]}, "'x' has no values"),
        ({"t": ["a", "b", "c"], "y": [1.0, 2.0, 3.0]}, {}, "data.time_column: column 't' cannot be read as times"),
        ({"t": [0, 1, 2], "y": [1.0, 2.0, 3.0]}, {}, "data.lookback"),
        ({"t": [], "y": []}, {}, "data.source: the data has no rows"),
    ],
)
def test_bad_data_is_refused_before_any_trial(tmp_path, tiny_raw, columns, data, expected):
    table = pa.table({k: pa.array(v, pa.float64() if k == "x" else None) for k, v in columns.items()})
    with pytest.raises(DataError, match=expected):
        prepare_dataset(data_config(tiny_raw, write(tmp_path, table), **data))


def test_a_label_with_one_class_is_refused(tmp_path, tiny_raw):
    table = pa.table({"seq": [0, 0, 1, 1], "t": [0, 1, 0, 1], "v": [1.0, 2, 3, 4], "y": ["a"] * 4})
    with pytest.raises(DataError, match="data.target: column 'y' has only one class"):
        prepare_dataset(data_config(tiny_raw, write(tmp_path, table), task="classify", id_column="seq"))


def test_a_label_changing_within_a_sequence_is_refused(tmp_path, tiny_raw):
    table = pa.table({"seq": [0, 0, 1, 1], "t": [0, 1, 0, 1], "v": [1.0, 2, 3, 4], "y": ["a", "b", "b", "b"]})
    with pytest.raises(DataError, match="data.target: sequences must have one label"):
        prepare_dataset(data_config(tiny_raw, write(tmp_path, table), task="classify", id_column="seq"))


def test_classify_needs_an_id_column(tmp_path, tiny_raw):
    table = pa.table({"t": [0, 1], "v": [1.0, 2.0], "y": ["a", "b"]})
    with pytest.raises(DataError, match="data.id_column: classify needs"):
        prepare_dataset(data_config(tiny_raw, write(tmp_path, table), task="classify"))
