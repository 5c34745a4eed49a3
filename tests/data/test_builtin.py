"""The shipped data sets load offline, with the documented columns, types and row counts."""

from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lstm_ray.data.builtin import BUILTIN_DATASETS, describe_builtin, load_builtin

LPC = [f"lpc{i}" for i in range(1, 13)]
EXPECTED = {  # name: (rows, columns), as documented in lstm_ray/data/sets/SOURCES.md
    "co2": (2284, ["date", "co2"]),
    "macro": (
        203,
        [
            "date",
            "realgdp",
            "realcons",
            "realinv",
            "realgovt",
            "realdpi",
            "cpi",
            "m1",
            "tbilrate",
            "unemp",
            "pop",
            "infl",
            "realint",
        ],
    ),
    "seattle_weather": (1461, ["date", "precipitation", "temp_max", "temp_min", "wind"]),
    "japanese_vowels": (9961, ["sequence_id", "step", *LPC, "label", "split"]),
}
FORECAST = [name for name, ds in BUILTIN_DATASETS.items() if ds.task == "forecast"]


def test_registry_lists_exactly_the_documented_sets():
    assert set(BUILTIN_DATASETS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_loads_with_documented_rows_and_columns(name):
    table = load_builtin(name)
    rows, columns = EXPECTED[name]
    assert table.num_rows == rows
    assert table.column_names == columns


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_defaults_name_real_columns(name):
    ds = BUILTIN_DATASETS[name]
    targets = [ds.target] if isinstance(ds.target, str) else ds.target
    named = [*targets, *(ds.features or []), ds.time_column, ds.id_column, ds.split_column]
    assert set(c for c in named if c is not None) <= set(load_builtin(name).column_names)


@pytest.mark.parametrize("name", FORECAST)
def test_forecast_sets_have_increasing_timestamps_and_float_values(name):
    ds = BUILTIN_DATASETS[name]
    table = load_builtin(name)
    times = table.column(ds.time_column)
    assert times.type == pa.timestamp("s")
    assert np.all(np.diff(times.to_numpy().astype("int64")) > 0)
    for column in table.column_names:
        if column != ds.time_column:
            assert table.column(column).type == pa.float64(), column


def test_co2_keeps_its_missing_weeks_as_nulls():
    table = load_builtin("co2")
    assert table.column("co2").null_count == 59
    assert table.column("date").null_count == 0
    assert set(np.diff(table.column("date").to_numpy()).astype("timedelta64[D]").astype(int)) == {7}


def test_co2_starts_in_march_1958_at_316_ppm():
    first = load_builtin("co2").slice(0, 1).to_pylist()[0]
    assert first["date"].isoformat() == "1958-03-29T00:00:00"
    assert first["co2"] == pytest.approx(316.1)


def test_japanese_vowels_has_nine_classes_and_the_archive_split():
    table = load_builtin("japanese_vowels")
    per_sequence = table.group_by("sequence_id").aggregate(
        [("label", "count_distinct"), ("split", "count_distinct"), ("split", "min"), ("label", "min")]
    )
    assert per_sequence.num_rows == 640
    assert pc.max(per_sequence.column("label_count_distinct")).as_py() == 1
    assert pc.max(per_sequence.column("split_count_distinct")).as_py() == 1
    counts = pc.value_counts(per_sequence.column("split_min")).to_pylist()  # in no set order
    assert {row["values"]: row["counts"] for row in counts} == {"train": 270, "test": 370}
    assert sorted(pc.unique(per_sequence.column("label_min")).to_pylist()) == list(range(1, 10))


def test_japanese_vowels_sequences_vary_in_length_and_count_steps_from_zero():
    table = load_builtin("japanese_vowels")
    lengths = table.group_by("sequence_id").aggregate([("step", "count"), ("step", "min"), ("step", "max")])
    counts = lengths.column("step_count").to_numpy()
    assert (counts.min(), counts.max()) == (7, 29)
    assert pc.max(lengths.column("step_min")).as_py() == 0
    np.testing.assert_array_equal(lengths.column("step_max").to_numpy(), counts - 1)
    assert all(table.column(c).null_count == 0 for c in table.column_names)


def test_unknown_name_error_lists_the_available_sets():
    with pytest.raises(ValueError, match="unknown builtin data set 'foo'") as err:
        load_builtin("foo")
    assert str(err.value).endswith("available: " + ", ".join(BUILTIN_DATASETS))


def test_describe_builtin_matches_the_files():
    described = {row["name"]: row for row in describe_builtin()}
    assert list(described) == list(BUILTIN_DATASETS)
    for name, (rows, columns) in EXPECTED.items():
        row = described[name]
        assert (row["rows"], row["columns"], row["column_names"]) == (rows, len(columns), columns)
        assert row["task"] == BUILTIN_DATASETS[name].task
        assert row["size_kb"] > 0 and row["licence"] and row["source"]


def test_shipped_files_stay_small_and_are_all_documented():
    sets = resources.files("lstm_ray.data").joinpath("sets")
    sources = sets.joinpath("SOURCES.md").read_text()
    total = 0
    for ds in BUILTIN_DATASETS.values():
        total += len(sets.joinpath(ds.file).read_bytes())
        assert f"`{ds.file}`" in sources
    assert total < 2 * 1024 * 1024


def test_describe_builtin_names_each_columns_role():
    described = {row["name"]: row for row in describe_builtin()}
    co2, vowels = described["co2"], described["japanese_vowels"]
    assert (co2["target"], co2["time_column"], co2["id_column"], co2["features"]) == ("co2", "date", None, ["co2"])
    assert (vowels["target"], vowels["id_column"], vowels["time_column"]) == ("label", "sequence_id", "step")
    assert vowels["split_column"] == "split" and vowels["features"] == LPC
    assert described["macro"]["features"][0] == "realgdp"  # the target's own history first


def test_config_line_is_the_data_mapping_a_config_takes():
    described = {row["name"]: row for row in describe_builtin()}
    assert described["co2"]["config"] == "data: {source: builtin:co2, task: forecast, target: co2, time_column: date}"
    assert described["japanese_vowels"]["config"] == (
        "data: {source: builtin:japanese_vowels, task: classify, target: label, id_column: sequence_id, "
        "time_column: step, split_column: split}"
    )
