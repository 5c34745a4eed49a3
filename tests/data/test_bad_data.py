"""Data files that used to be refused wrongly or accepted silently wrong: each is now one `error: data.KEY: ...`
line from `lstm-ray validate` (before Ray), or loads equal to its plain equivalent.

Generated at the root cause: duplicate names, case variants across a folder's files, type clashes between files,
missing times and ids, nested and union columns, text among numbers, dictionary and decimal columns, int64 times
beyond 2**53.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.cli import main
from lstm_ray.config import load_config
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.data.layout import RowSpec, arrange_rows
from lstm_ray.data.sources import read_table

ROWS = 40  # rows of a generated series: enough for lookback 4 + horizon 1 in every split
EXAMPLES = 20
CHECK = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(lambda n: n not in ("t", "y", "c"))
NOT_TEXT = {"n", "na", "nan", "null", "true", "false", "inf", "infinity"}  # a CSV reads these as null, bool or float


def wave(n: int = ROWS) -> list[float]:
    return [round(math.sin(i / 3), 4) for i in range(n)]


def write(table: pa.Table, path: Path) -> Path:
    """`table` as CSV, Parquet or Arrow IPC, by the suffix of `path`."""
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    elif path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
    return path


def config(folder: Path, source: Path, **data_keys) -> Path:
    data = {"source": str(source), "target": "y", "time_column": "t", "lookback": 4, "horizon": 1} | data_keys
    raw = {
        "name": "bad-data",
        "data": data,
        "model": {"hidden_size": 8},
        "train": {"max_epochs": 1},
        "search": {"num_samples": 1, "space": {"train.lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
    }
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def validate(capsys, make: Callable[[Path], Path], **data_keys) -> tuple[int, str, str]:
    """`lstm-ray validate` on the source `make` writes into a fresh folder: exit code, stdout, stderr."""
    capsys.readouterr()
    with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-data-") as tmp:
        code = main(["validate", str(config(Path(tmp), make(Path(tmp)), **data_keys))])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(result: tuple[int, str, str], line_start: str, *says: str) -> None:
    code, out, err = result
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {line_start}"), err
    for part in says:
        assert part in err, err


def prepared(make: Callable[[Path], Path], **data_keys):
    with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-data-") as tmp:
        return prepare_dataset(load_config(config(Path(tmp), make(Path(tmp)), **data_keys)).data)


# --- names ------------------------------------------------------------------------------------------------------


@CHECK
@given(
    extra=st.lists(NAMES, min_size=0, max_size=3, unique=True),
    data=st.data(),
    suffix=st.sampled_from([".csv", ".parquet", ".arrow"]),
)
def test_a_column_name_used_twice_is_refused_naming_it(capsys, extra, data, suffix):
    names = ["t", "y", *extra]
    twice = data.draw(st.sampled_from(names), label="repeated")
    at = data.draw(st.integers(0, len(names)), label="position")
    names.insert(at, twice)
    columns = [pa.array(range(ROWS)) if n == "t" else pa.array(wave()) for n in names]
    table = pa.Table.from_arrays(columns, names=names)
    result = validate(capsys, lambda d: write(table, d / f"series{suffix}"))
    assert_refused(result, "data.source: ", f"column {twice!r} appears 2 times")


def case_variant(name: str, flips: list[bool]) -> str:
    """`name` with the letters `flips` marks in the other case; never `name` itself."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    flipped = {letters[i % len(letters)] for i, flip in enumerate(flips) if flip} or {letters[0]}
    return "".join(c.swapcase() if i in flipped else c for i, c in enumerate(name))


@CHECK
@given(
    extra=st.lists(NAMES, min_size=1, max_size=3, unique=True),
    files=st.integers(2, 4),
    data=st.data(),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_column_names_differing_in_case_across_files_are_refused_naming_both(capsys, extra, files, data, suffix):
    names = ["t", "y", *extra]
    varied = data.draw(st.sampled_from(names), label="varied column")
    variant = case_variant(varied, data.draw(st.lists(st.booleans(), min_size=1, max_size=4), label="flips"))
    spelled = data.draw(st.lists(st.booleans(), min_size=files, max_size=files).filter(lambda b: len(set(b)) == 2))
    first_other = next(i for i, b in enumerate(spelled) if b != spelled[0])

    def folder(d: Path) -> Path:
        (d / "parts").mkdir()
        for k, use_variant in enumerate(spelled):
            own = [variant if (n == varied and use_variant) else n for n in names]
            rows = range(k * ROWS, (k + 1) * ROWS)
            columns = [pa.array(rows) if n == "t" else pa.array(wave()) for n in names]
            write(pa.Table.from_arrays(columns, names=own), d / "parts" / f"part-{k}{suffix}")
        return d / "parts"

    first, other = (variant, varied) if spelled[0] else (varied, variant)
    assert_refused(
        validate(capsys, folder),
        "data.source: ",
        f"column {first!r} in part-0{suffix} is {other!r} in part-{first_other}{suffix} (names differ in case)",
    )


@CHECK
@given(extra=st.lists(NAMES, min_size=1, max_size=3, unique=True), files=st.integers(2, 4), data=st.data())
def test_a_column_missing_from_some_files_is_refused_naming_file_and_column(capsys, extra, files, data):
    lacking = data.draw(st.sets(st.integers(1, files - 1), min_size=1), label="files lacking it")
    dropped = data.draw(st.sampled_from(extra), label="dropped column")

    def folder(d: Path) -> Path:
        (d / "parts").mkdir()
        for k in range(files):
            names = ["t", "y", *[n for n in extra if not (k in lacking and n == dropped)]]
            columns = [pa.array(range(k * ROWS, (k + 1) * ROWS)) if n == "t" else pa.array(wave()) for n in names]
            write(pa.Table.from_arrays(columns, names=names), d / "parts" / f"part-{k}.parquet")
        return d / "parts"

    assert_refused(
        validate(capsys, folder), "data.source: ", f"part-{min(lacking)}.parquet lacks {dropped!r} compared with part-0"
    )


CLASHING = [(pa.string(), pa.int64()), (pa.timestamp("ms"), pa.int64()), (pa.string(), pa.float64())]
WIDENING = [
    (pa.int32(), pa.int64()),
    (pa.int16(), pa.int32()),
    (pa.float32(), pa.float64()),
    (pa.int64(), pa.float64()),
]


def typed(kind: pa.DataType, first: int) -> pa.Array:
    """ROWS values of `kind` counting up from `first` (text and timestamps too)."""
    if pa.types.is_string(kind):
        return pa.array([f"v{i}" for i in range(first, first + ROWS)])
    if pa.types.is_timestamp(kind):
        return pa.array(np.datetime64("2024-01-01", "ms") + np.arange(first, first + ROWS) * np.timedelta64(1, "h"))
    return pa.array(range(first, first + ROWS)).cast(kind)


@CHECK
@given(pair=st.sampled_from(CLASHING + WIDENING), swap=st.booleans(), files=st.integers(2, 4), data=st.data())
def test_a_column_typed_differently_across_files_is_widened_with_a_note_or_refused(capsys, pair, swap, files, data):
    first, other = reversed(pair) if swap else pair
    kinds = [first, *data.draw(st.lists(st.sampled_from([first, other]), min_size=files - 1, max_size=files - 1))]
    if other not in kinds:
        kinds[-1] = other
    column = data.draw(st.sampled_from(["t", "x"]) if pair in WIDENING else st.just("x"), label="column")

    def folder(d: Path) -> Path:
        (d / "parts").mkdir()
        for k, kind in enumerate(kinds):
            table = pa.table({"t": typed(pa.int64(), k * ROWS), "y": wave(), "x": typed(pa.int8(), 0)})
            table = table.set_column(table.column_names.index(column), column, typed(kind, k * ROWS))
            write(table, d / "parts" / f"part-{k}.parquet")
        return d / "parts"

    code, out, err = result = validate(capsys, folder)
    if pair in CLASHING:
        clash = kinds.index(other)
        assert_refused(
            result,
            "data.source: ",
            f"column {column!r} is {first} in part-0.parquet but {other} in part-{clash}.parquet",
        )
    else:
        assert code == 0 and err == "", err
        assert f"data.source: column {column!r} has types" in out and f"all are read as {pair[1]}" in out


# --- missing times and ids ---------------------------------------------------------------------------------------


@CHECK
@given(
    missing=st.sets(st.integers(0, ROWS - 1), min_size=1, max_size=5),
    role=st.sampled_from(["time", "id"]),
    how=st.sampled_from(["null", "NaN", "blank text"]),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_a_missing_time_or_id_is_refused_naming_the_column_and_first_row(capsys, missing, role, how, suffix):
    name, key = ("t", "data.time_column") if role == "time" else ("id", "data.id_column")
    if how == "blank text":
        values = pa.array(["" if i in missing else f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00" for i in range(ROWS)])
        if role == "id":
            values = pa.array(["" if i in missing else f"s{i % 2}" for i in range(ROWS)])
    else:
        blank = None if how == "null" else math.nan
        values = pa.array([blank if i in missing else float(i if role == "time" else i % 2) for i in range(ROWS)])
    table = pa.table({"t": pa.array(range(ROWS)), "y": wave(), "id": pa.array([i % 2 for i in range(ROWS)])})
    table = table.set_column(table.column_names.index(name), name, values)
    result = validate(capsys, lambda d: write(table, d / f"series{suffix}"), id_column="id")
    count, first = len(missing), min(missing) + 1
    assert_refused(
        result, f"{key}: column {name!r} has {count} missing values (empty or NaN), the first in row {first};"
    )


# --- nested, union and mixed columns -----------------------------------------------------------------------------


def nested(kind: str, n: int) -> pa.Array:
    codes = [i % 2 for i in range(n)]
    if kind == "list":
        return pa.array([[c] for c in codes])
    if kind == "large_list":
        return pa.array([[c] for c in codes], pa.large_list(pa.int64()))
    if kind == "fixed_size_list":
        return pa.array([[c, c] for c in codes], pa.list_(pa.int64(), 2))
    if kind == "struct":
        return pa.array([{"store": c} for c in codes])
    if kind == "map":
        return pa.array([[("store", c)] for c in codes], pa.map_(pa.string(), pa.int64()))
    children = [pa.array(codes), pa.array([f"s{c}" for c in codes])]
    types = pa.array(codes, pa.int8())
    if kind == "sparse_union":
        return pa.UnionArray.from_sparse(types, children)
    return pa.UnionArray.from_dense(types, pa.array(range(n), pa.int32()), [pa.array(range(n)), children[1]])


@CHECK
@given(
    kind=st.sampled_from(["list", "large_list", "fixed_size_list", "struct", "map", "sparse_union", "dense_union"]),
    role=st.sampled_from(["id_column", "categorical"]),
)
def test_nested_and_union_id_and_category_columns_are_refused_naming_the_type(capsys, kind, role):
    column = nested(kind, ROWS)
    table = pa.table({"t": pa.array(range(ROWS)), "y": wave(), "c": column})
    keys = {"id_column": "c"} if role == "id_column" else {"categorical": ["c"], "features": ["y", "c"]}
    result = validate(capsys, lambda d: write(table, d / "series.arrow"), **keys)
    assert_refused(result, f"data.{role}: column 'c' is {column.type}, ", "one text, number or date per row")


WORDS = st.from_regex(r"[A-Za-z][A-Za-z_]{0,6}", fullmatch=True).filter(lambda w: w.lower() not in NOT_TEXT)


@CHECK
@given(texts=st.dictionaries(st.integers(0, ROWS - 1), WORDS, min_size=1, max_size=4), target=st.booleans())
def test_text_among_numbers_in_a_csv_column_is_refused_naming_the_first_cell(capsys, texts, target):
    cells = [texts.get(i, str(v)) for i, v in enumerate(wave())]
    table = pa.table({"t": pa.array(range(ROWS)), "y": wave(), "x": cells})
    if target:
        table = pa.table({"t": pa.array(range(ROWS)), "y": cells})
    keys = {} if target else {"features": ["y", "x"]}
    first = min(texts)
    result = validate(capsys, lambda d: write(table, d / "series.csv"), **keys)
    assert_refused(
        result,
        "data.target: column 'y'" if target else "data.features: column 'x'",
        f"mixes numbers and text ({texts[first]!r} in row {first + 1})",
    )


@CHECK
@given(
    ids=st.lists(st.one_of(st.integers(0, 99).map(str), WORDS), min_size=2, max_size=4, unique=True).filter(
        lambda ids: len({i.isdigit() for i in ids}) == 2
    )
)
def test_ids_mixing_numbers_and_text_in_a_csv_are_read_as_text_one_series_each(capsys, ids):
    column = [ids[i % len(ids)] for i in range(len(ids) * ROWS)]
    table = pa.table({"t": [i // len(ids) for i in range(len(column))], "y": wave(len(column)), "id": column})
    code, out, err = validate(capsys, lambda d: write(table, d / "series.csv"), id_column="id")
    assert code == 0 and err == "" and f"  {len(ids)} series" in out, err


# --- dictionary, decimal and int64 columns that must load as their plain equivalents --------------------------


@CHECK
@given(
    thousandths=st.lists(st.integers(-(10**9), 10**9), min_size=2 * ROWS, max_size=2 * ROWS),
    time_form=st.sampled_from(["text", "timestamp"]),
    encode=st.sets(st.sampled_from(["t", "id", "c", "y"]), min_size=1),
    suffix=st.sampled_from([".parquet", ".arrow"]),
)
def test_dictionary_and_decimal_columns_load_equal_to_their_plain_equivalents(thousandths, time_form, encode, suffix):
    values = [Decimal(k).scaleb(-3) for k in thousandths]
    n = len(values)
    stamps = np.datetime64("2024-01-01", "s") + np.arange(n) * np.timedelta64(1, "h")
    times = pa.array(stamps) if time_form == "timestamp" else pa.array(np.datetime_as_string(stamps))
    plain = pa.table(
        {
            "t": times,
            "id": [f"s{i % 2}" for i in range(n)],
            "c": [["red", "blue", "green"][i % 3] for i in range(n)],
            "y": [float(v) for v in values],
        }
    )
    encoded = plain.set_column(3, "y", pa.array(values, pa.decimal128(13, 3)))
    for name in encode:
        index = encoded.column_names.index(name)
        encoded = encoded.set_column(index, name, encoded.column(name).dictionary_encode())
    spec = RowSpec(task="forecast", targets=["y"], numeric=["y"], categorical=["c"], id_column="id", time_column="t")
    with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-data-") as tmp:
        a, b = (
            arrange_rows(read_table(str(write(t, Path(tmp) / f"{k}{suffix}"))), spec)
            for k, t in enumerate([plain, encoded])
        )
    assert a.values.tolist() == b.values.tolist() and a.times.tolist() == b.times.tolist()
    assert a.categories["c"].tolist() == b.categories["c"].tolist() and a.series_ids == b.series_ids
    keys = {"id_column": "id", "categorical": ["c"], "features": ["y", "c"], "lookback": 3}
    a = prepared(lambda d: write(plain, d / f"plain{suffix}"), **keys)
    b = prepared(lambda d: write(encoded, d / f"encoded{suffix}"), **keys)
    assert a.columns == b.columns and a.offsets.tolist() == b.offsets.tolist()
    assert np.array_equal(a.values, b.values) and a.season_length == b.season_length


@CHECK
@given(
    start=st.integers(2**53 - 4 * ROWS, 2**53 + 4 * ROWS),
    steps=st.lists(st.integers(1, 3), min_size=ROWS - 1, max_size=ROWS - 1),
    seed=st.integers(0, 2**16),
)
def test_int64_times_beyond_2_to_53_stay_distinct_and_in_order(capsys, start, steps, seed):
    times = np.concatenate([[start], start + np.cumsum(steps)]).astype(np.int64)
    shuffled = np.random.default_rng(seed).permutation(ROWS)
    table = pa.table({"t": pa.array(times[shuffled], pa.int64()), "y": np.arange(ROWS, dtype=np.float64)[shuffled]})
    rows = arrange_rows(table, RowSpec(task="forecast", targets=["y"], numeric=["y"], time_column="t"))
    assert rows.times.tolist() == times.tolist() and rows.values[:, 0].tolist() == list(range(ROWS))
    code, _, err = validate(capsys, lambda d: write(table, d / "series.parquet"))
    assert code == 0 and err == "", err


def test_two_rows_at_2_to_53_and_one_more_are_two_rows_in_order():
    table = pa.table({"t": pa.array([2**53 + 1, 2**53], pa.int64()), "y": [2.0, 1.0]})
    rows = arrange_rows(table, RowSpec(task="forecast", targets=["y"], numeric=["y"], time_column="t"))
    assert rows.times.tolist() == [2**53, 2**53 + 1] and rows.values[:, 0].tolist() == [1.0, 2.0]


@CHECK
@given(
    offsets=st.lists(st.integers(0, 10**9), min_size=ROWS, max_size=ROWS, unique=True),
    unit=st.sampled_from(["ms", "us"]),
    zone=st.sampled_from(["", "Z", "+00:00"]),
)
def test_sub_second_iso_times_in_a_csv_are_accepted_and_kept(capsys, offsets, unit, zone):
    stamps = np.datetime64("2024-01-01T00:00:00", unit) + np.array(offsets).astype(f"timedelta64[{unit}]")
    text = [f"{t}{zone}" for t in np.datetime_as_string(stamps, unit=unit)]
    table = pa.table({"t": text, "y": wave()})
    code, _, err = validate(capsys, lambda d: write(table, d / "series.csv"))
    assert code == 0 and err == "", err
    with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-data-") as tmp:
        read = read_table(str(write(table, Path(tmp) / "series.csv")))
    rows = arrange_rows(read, RowSpec(task="forecast", targets=["y"], numeric=["y"], time_column="t"))
    assert rows.times.astype("datetime64[us]").tolist() == np.sort(stamps).astype("datetime64[us]").tolist()
