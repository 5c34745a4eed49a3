"""The synthetic generators are deterministic, have the documented layout, and carry the promised signal."""

import numpy as np
import pyarrow as pa
import pytest

from lstm_ray.data.synthetic import adding_problem, noisy_seasonal, sequence_classes

GENERATORS = {
    "noisy_seasonal": lambda seed: noisy_seasonal(n_rows=200, seed=seed),
    "adding_problem": lambda seed: adding_problem(n_sequences=50, length=20, seed=seed, variable_length=True),
    "sequence_classes": lambda seed: sequence_classes(n_sequences=30, length=16, seed=seed, variable_length=True),
}


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _lengths(table: pa.Table) -> np.ndarray:
    return np.bincount(table.column("sequence_id").to_numpy())


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_gives_the_same_table(name):
    make = GENERATORS[name]
    assert make(7).equals(make(7))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_different_seeds_give_different_tables(name):
    make = GENERATORS[name]
    assert not make(1).equals(make(2))


def test_noisy_seasonal_is_hourly_from_2020_with_documented_columns():
    table = noisy_seasonal(n_rows=50)
    assert table.schema == pa.schema([("t", pa.timestamp("s")), ("y", pa.float64()), ("x", pa.float64())])
    times = table.column("t").to_numpy()
    assert times[0] == np.datetime64("2020-01-01T00:00:00")
    assert set(np.diff(times).astype("timedelta64[h]").astype(int)) == {1}
    assert table.num_rows == 50


def test_noisy_seasonal_x_leads_y():
    table = noisy_seasonal(n_rows=2000, trend=0.0, noise=0.05)
    c = _columns(table)
    irregular = c["y"] - np.sin(2 * np.pi * np.arange(2000) / 24)
    ahead = np.corrcoef(c["x"][:-6], irregular[6:])[0, 1]
    own_past = np.corrcoef(irregular[:-6], irregular[6:])[0, 1]
    assert ahead > 0.9 > own_past


def test_noisy_seasonal_trend_is_the_rise_per_period():
    flat = _columns(noisy_seasonal(n_rows=240, trend=0.0))["y"]
    rising = _columns(noisy_seasonal(n_rows=240, trend=2.0))["y"]
    np.testing.assert_allclose(rising - flat, 2.0 * np.arange(240) / 24)


def test_adding_problem_has_documented_columns():
    table = adding_problem(n_sequences=10, length=8)
    assert table.column_names == ["sequence_id", "step", "value", "marker", "target"]
    assert [f.type for f in table.schema] == [
        pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
    ]
    assert table.num_rows == 80


@pytest.mark.parametrize("variable_length", [False, True])
def test_adding_problem_target_is_the_sum_of_the_two_marked_values(variable_length):
    c = _columns(adding_problem(n_sequences=200, length=30, seed=3, variable_length=variable_length))
    ids = c["sequence_id"]
    np.testing.assert_array_equal(np.bincount(ids, weights=c["marker"]), 2.0)
    marked_sum = np.bincount(ids, weights=c["value"] * c["marker"])
    target_per_sequence = np.bincount(ids, weights=c["target"]) / np.bincount(ids)
    np.testing.assert_allclose(marked_sum, target_per_sequence)


@pytest.mark.parametrize("variable_length", [False, True])
def test_adding_problem_marks_one_step_in_each_half(variable_length):
    table = adding_problem(n_sequences=200, length=30, seed=4, variable_length=variable_length)
    c = _columns(table)
    lengths = _lengths(table)
    marked = c["marker"] == 1.0
    in_first_half = c["step"][marked] < lengths[c["sequence_id"][marked]] // 2
    np.testing.assert_array_equal(np.bincount(c["sequence_id"][marked], weights=in_first_half), 1.0)


def test_fixed_length_sequences_all_have_the_requested_length():
    assert set(_lengths(adding_problem(n_sequences=20, length=12))) == {12}
    assert set(_lengths(sequence_classes(n_sequences=20, length=12))) == {12}


@pytest.mark.parametrize("make", [adding_problem, sequence_classes])
def test_variable_lengths_vary_between_half_and_full_length(make):
    table = make(n_sequences=300, length=40, seed=5, variable_length=True)
    lengths = _lengths(table)
    assert lengths.min() >= 20 and lengths.max() <= 40
    assert len(set(lengths)) > 5
    steps = table.column("step").to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    np.testing.assert_array_equal(steps[starts], 0)


def test_sequence_classes_has_balanced_labels_constant_within_a_sequence():
    table = sequence_classes(n_sequences=31, length=10, n_classes=3)
    assert table.column_names == ["sequence_id", "step", "value", "label"]
    assert table.schema.field("label").type == pa.int64()
    c = _columns(table)
    per_sequence = np.zeros(31, dtype=np.int64)
    per_sequence[c["sequence_id"]] = c["label"]
    np.testing.assert_array_equal(per_sequence[c["sequence_id"]], c["label"])
    assert sorted(np.bincount(per_sequence)) == [10, 10, 11]


def test_sequence_classes_frequency_separates_the_classes():
    c = _columns(sequence_classes(n_sequences=90, length=40, n_classes=3, seed=1))
    values = c["value"].reshape(90, 40)
    labels = c["label"].reshape(90, 40)[:, 0]
    peak = np.argmax(np.abs(np.fft.rfft(values, axis=1)), axis=1)  # dominant frequency bin per sequence
    means = [peak[labels == k].mean() for k in range(3)]
    assert means == sorted(means) and means[0] < means[1] < means[2]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: noisy_seasonal(n_rows=0), "n_rows"),
        (lambda: noisy_seasonal(period=1), "period"),
        (lambda: noisy_seasonal(trend=float("nan")), "trend"),
        (lambda: noisy_seasonal(noise=-0.1), "noise"),
        (lambda: noisy_seasonal(n_rows=2.5), "n_rows"),
        (lambda: noisy_seasonal(seed=-1), "seed"),
        (lambda: adding_problem(n_sequences=0), "n_sequences"),
        (lambda: adding_problem(length=1), "length"),
        (lambda: adding_problem(length=3, variable_length=True), "length"),
        (lambda: adding_problem(length=True), "length"),
        (lambda: sequence_classes(n_classes=1), "n_classes"),
        (lambda: sequence_classes(n_classes=11), "n_classes"),
        (lambda: sequence_classes(length=3), "length"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, field):
    with pytest.raises(ValueError, match=f"`{field}` must be"):
        call()
