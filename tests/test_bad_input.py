"""Bad input, generated: every malformed config, flag or data file gets one `error: KEY: ...` line and exit 2.

    scripts/loopback-only .venv/bin/python -m pytest tests/test_bad_input.py -q -p no:cacheprovider

`CASES` lists kinds of bad input (a field x a malformation); hypothesis draws concrete inputs of each kind
(values, typos, file bytes, row counts), delivered through the YAML file or a `--set` flag. Each input runs
through `lstm_ray.cli.main` in process, `validate` and then `tune`; a random sample of kinds also runs the
real `lstm-ray` executable in a subprocess, which proves the exit code, the lone line on stderr, that no
`ray` module was imported, that nothing appeared in RAY_TMPDIR and that no process was left behind. The run
ends by printing how many distinct inputs it tried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray import config
from lstm_ray.cli import main
from lstm_ray.train.metrics import TASK_METRICS

EXAMPLES_PER_KIND = 6  # inputs hypothesis draws for each kind of bad input
SUBPROCESS_EXAMPLES = 12  # inputs, of randomly drawn kinds, run through the real `lstm-ray` executable
LSTM_RAY = Path(sys.executable).with_name("lstm-ray")
ROWS = 80  # rows of a generated series: enough for lookback 8 + horizon 2 in every split

BASE = {
    "name": "bad-input",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 8, "horizon": 2},
    "model": {"hidden_size": 8},
    "train": {"max_epochs": 2},
    "search": {"num_samples": 2, "space": {"train.lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
}
SECTION_FIELDS = {
    name: [f.name for f in dataclasses.fields(cls)]
    for name, cls in [
        ("data", config.DataConfig),
        ("model", config.ModelConfig),
        ("train", config.TrainConfig),
        ("search", config.SearchConfig),
    ]
}
KINDS = ("choice", "grid", "uniform", "loguniform", "quniform", "randint", "when")
TRIED: set[str] = set()  # fingerprints of the distinct bad inputs run, for the closing count


@dataclass(frozen=True)
class Case:
    """One kind of bad input. `build` draws an input, writes its files into the folder and returns the CLI
    arguments after the command and the key the error line must name; `says` must appear in that line."""

    kind: str
    build: Callable[[st.DataObject, Path], tuple[list[str], str]]
    says: str = ""
    examples: int = EXAMPLES_PER_KIND  # inputs hypothesis draws (fewer when the kind has fewer)


# --- kinds of bad input ---------------------------------------------------------------------------------------


def write_config(folder: Path, raw: dict) -> str:
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def with_entries(raw: dict, entries: dict[str, Any]) -> dict:
    """A copy of `raw` with dotted keys set, as `--set` would (search.space.PATH keeps PATH whole)."""
    raw = json.loads(json.dumps(raw))
    for key, value in entries.items():
        if key.startswith("search.space."):
            raw["search"]["space"][key.removeprefix("search.space.")] = value
            continue
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


def entries_case(kind: str, entries: st.SearchStrategy, field: str | Callable[[dict], str], says: str = "") -> Case:
    """Config keys set to drawn values (a dict), all through the YAML file or all through --set flags, whose
    text is JSON: YAML flow syntax, so a flag carries the value's type."""

    def build(data: st.DataObject, folder: Path) -> tuple[list[str], str]:
        chosen = data.draw(entries, label="entries")
        expected = field if isinstance(field, str) else field(chosen)
        if data.draw(st.booleans(), label="through --set"):
            flags = [arg for key, value in chosen.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
            return [write_config(folder, BASE), *flags], expected
        return [write_config(folder, with_entries(BASE, chosen))], expected

    return Case(kind, build, says)


def value_case(kind: str, field: str, values: st.SearchStrategy, says: str = "") -> Case:
    """`field` set to a drawn value."""
    return entries_case(kind, values.map(lambda value: {field: value}), field, says)


def keyed_case(kind: str, keys: st.SearchStrategy, value: Any, says: str = "") -> Case:
    """A drawn key (which the error must name) set to `value`."""
    return entries_case(kind, keys.map(lambda key: {key: value}), lambda chosen: next(iter(chosen)), says)


def flag_case(kind: str, field: str | Callable[[str], str], flags: st.SearchStrategy) -> Case:
    def build(data: st.DataObject, folder: Path) -> tuple[list[str], str]:
        flag = data.draw(flags, label="--set")
        return [write_config(folder, BASE), "--set", flag], field if isinstance(field, str) else field(flag)

    return Case(kind, build)


def file_case(
    kind: str, contents: st.SearchStrategy, field: str | None = None, examples: int = EXAMPLES_PER_KIND
) -> Case:
    """The config file's bytes themselves are bad; the error names the file unless `field` is given."""

    def build(data: st.DataObject, folder: Path) -> tuple[list[str], str]:
        path = folder / "experiment.yaml"
        path.write_bytes(data.draw(contents, label="file"))
        return [str(path)], field or str(path)

    return Case(kind, build, examples=examples)


def data_case(kind: str, field: str, write: Callable[[st.DataObject, Path], None], **data_keys: Any) -> Case:
    """A config reading the file `write` creates: `series.csv`, or the name in data_keys['source']."""
    source_name = data_keys.pop("source", "series.csv")

    def build(data: st.DataObject, folder: Path) -> tuple[list[str], str]:
        source = folder / source_name
        write(data, source)
        section = {"source": str(source), "target": "y", "time_column": "t", "lookback": 8, "horizon": 2}
        raw = BASE | {"data": section | data_keys}
        if data_keys.get("task") == "classify":
            raw |= {"search": {"num_samples": 2, "metric": "val_accuracy", "mode": "max"}}
        return [write_config(folder, raw)], field

    return Case(kind, build)


def write_csv(path: Path, columns: dict[str, list]) -> None:
    """Columns (name -> cells, '' for an empty cell) as CSV text."""
    rows = zip(*columns.values(), strict=True)
    path.write_text(",".join(columns) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))


def wave(n: int = ROWS) -> list[float]:
    return [round(math.sin(i / 3), 4) for i in range(n)]


def csv_of(columns: Callable[[st.DataObject], dict[str, list]]) -> Callable[[st.DataObject, Path], None]:
    return lambda data, path: write_csv(path, columns(data))


def series(y: list, t: list | None = None, **more: list) -> dict[str, list]:
    return {"t": list(range(len(y))) if t is None else t, "y": y, **more}


def raw_bytes(contents: st.SearchStrategy) -> Callable[[st.DataObject, Path], None]:
    return lambda data, path: path.write_bytes(data.draw(contents, label="bytes"))


def parquet_of(columns: dict[str, list]) -> Callable[[st.DataObject, Path], None]:
    return lambda data, path: pq.write_table(pa.table(columns), path)


def one_value_replaced(values: list, replacements: st.SearchStrategy) -> Callable[[st.DataObject], list]:
    def draw(data: st.DataObject) -> list:
        row = data.draw(st.integers(0, len(values) - 1), label="row")
        return [data.draw(replacements, label="value") if i == row else v for i, v in enumerate(values)]

    return draw


def one_typo(word: str) -> st.SearchStrategy:
    """`word` with one character dropped or two neighbours swapped (never `word` itself)."""
    drops = [word[:i] + word[i + 1 :] for i in range(len(word))]
    swaps = [word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)]
    return st.sampled_from(sorted({w for w in drops + swaps if w != word}))


def key_typos(min_length: int = 5) -> st.SearchStrategy:
    """`section.key` with one typo in a key of at least `min_length` characters, never another valid key."""
    return st.sampled_from(sorted(SECTION_FIELDS)).flatmap(
        lambda section: (
            st.sampled_from([f for f in SECTION_FIELDS[section] if len(f) >= min_length])
            .flatmap(one_typo)
            .filter(lambda typo: typo not in SECTION_FIELDS[section])
            .map(lambda typo: f"{section}.{typo}")
        )
    )


def first_repeat(values: list) -> int:
    return next(i for i, v in enumerate(values) if v in values[:i])


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
words = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=10)
METRICS = {metric for metrics in TASK_METRICS.values() for metric in metrics}
space = "search.space."
CLASSIFY = {"task": "classify", "id_column": "id", "target": "label", "time_column": "step", "features": ["x"]}

CASES = [
    # wrong types
    value_case("text for a whole number", "data.lookback", text),
    value_case("list for a whole number", "model.hidden_size", st.lists(st.integers(1, 9), min_size=1)),
    value_case("boolean for a number", "train.lr", st.booleans()),
    value_case("number or text for a boolean", "model.bidirectional", st.integers() | text),
    value_case("non-text source", "data.source", st.integers() | finite | st.lists(text, min_size=1)),
    value_case("non-mapping search space", "search.space", st.lists(st.integers()) | st.integers() | text),
    value_case("text for a fraction", "data.val_fraction", text),
    value_case("non-mapping stop", "search.stop", st.lists(st.integers(), min_size=1) | st.integers()),
    value_case("scalar for a list", "data.features", text | st.integers()),
    value_case("scalar for a section", "model", st.integers() | text | st.lists(st.integers())),
    value_case("fraction for a count", "search.num_samples", finite.filter(lambda x: not x.is_integer())),
    value_case("non-text name", "name", st.lists(text, min_size=1) | st.integers() | st.booleans()),
    entries_case(
        "non-text in a list of text",
        st.lists(st.integers(), min_size=1).map(lambda v: {"data.target": v}),
        "data.target[0]",
    ),
    # numbers out of range
    value_case("lookback below 1", "data.lookback", st.integers(max_value=0)),
    value_case("horizon below 1", "data.horizon", st.integers(max_value=0)),
    value_case("hidden size below 1", "model.hidden_size", st.integers(max_value=0)),
    value_case("dropout outside [0, 1)", "model.dropout", st.floats(min_value=1.0) | st.floats(max_value=-1e-6)),
    value_case("learning rate outside (0, 10]", "train.lr", st.floats(max_value=0.0) | st.floats(min_value=10.001)),
    value_case("fraction outside (0, 1)", "data.val_fraction", st.floats(min_value=1.0) | st.floats(max_value=0.0)),
    value_case("no trials", "search.num_samples", st.integers(max_value=0)),
    value_case("no checkpoints kept", "storage.keep_checkpoints", st.integers(max_value=0)),
    value_case("negative CPUs", "resources.cpu", st.floats(max_value=-1e-6, allow_infinity=False)),
    value_case("reduction factor below 2", "search.reduction_factor", st.integers(max_value=1)),
    value_case("whole number beyond int64", "data.lookback", st.integers(min_value=2**63)),
    value_case("NaN or infinite dropout", "model.dropout", st.sampled_from([math.nan, math.inf, -math.inf])),
    value_case("non-finite time budget", "search.time_budget", st.sampled_from(["nan", "inf", "-infm", "NaNs"])),
    value_case("time budget not a duration", "search.time_budget", st.sampled_from(["abc", "1x", "5 h m", "--1h"])),
    value_case("time budget not positive", "search.time_budget", st.floats(max_value=0.0, allow_infinity=False)),
    value_case("memory below a trial's minimum", "resources.memory_mb", st.floats(0.0, 511.9)),
    value_case("fractional GPUs above 1", "resources.gpu", st.floats(1.01, 8).filter(lambda x: not x.is_integer())),
    # unknown keys and values, with did-you-mean
    keyed_case("one typo in a section's key", key_typos(), 1, says="did you mean"),
    keyed_case("typo in a section's name", one_typo("model").filter(lambda w: w not in BASE), {}, says="did you mean"),
    keyed_case("unknown top-level key", words.filter(lambda w: w not in config.SECTIONS and w != "name"), 1),
    value_case("cell not lstm, gru or rnn", "model.cell", one_typo("lstm") | one_typo("gru") | st.just("LSTM")),
    value_case("algorithm typo", "search.algorithm", one_typo("hyperopt") | one_typo("optuna"), says="did you mean"),
    value_case("scheduler typo", "search.scheduler", one_typo("median") | one_typo("hyperband"), says="did you mean"),
    value_case("metric typo", "search.metric", one_typo("val_rmse").filter(lambda m: m not in METRICS)),
    value_case("scaling typo", "data.scaling", one_typo("standard") | one_typo("minmax"), says="did you mean"),
    keyed_case(
        "typo in a searched path",
        one_typo("hidden_size").map(lambda w: f"{space}model.{w}"),
        {"choice": [8]},
        says="did you mean",
    ),
    # bad search-space specs
    value_case(
        "unknown distribution",
        f"{space}model.hidden_size",
        words.filter(lambda w: w not in KINDS).map(lambda kind: {kind: [8, 16]}),
    ),
    value_case("empty choice", f"{space}model.hidden_size", st.just({"choice": []})),
    value_case(
        "uniform low above high",
        f"{space}model.dropout",
        st.tuples(st.floats(0.01, 0.9), st.floats(0.0, 0.009)).map(lambda b: {"uniform": list(b)}),
    ),
    value_case(
        "loguniform low <= 0",
        f"{space}train.lr",
        st.floats(max_value=0.0, allow_infinity=False).map(lambda low: {"loguniform": [low, 0.1]}),
    ),
    value_case(
        "wrong number of bounds",
        f"{space}train.lr",
        st.lists(st.floats(0.001, 0.1), min_size=1, max_size=5)
        .filter(lambda b: len(b) != 2)
        .map(lambda b: {"uniform": b}),
    ),
    value_case(
        "non-numeric bounds", f"{space}train.lr", st.lists(text, min_size=2, max_size=2).map(lambda b: {"uniform": b})
    ),
    value_case(
        "randint with fractions",
        f"{space}model.num_layers",
        st.tuples(st.floats(0.1, 1.9), st.integers(3, 5)).map(lambda b: {"randint": list(b)}),
    ),
    value_case(
        "searched values outside the field's range",
        f"{space}model.dropout",
        st.floats(1.0, 5.0).map(lambda high: {"uniform": [0.0, high]}),
    ),
    keyed_case(
        "searching a key fixed for the sweep",
        st.sampled_from(["data.source", "data.target", "data.time_column"]).map(space.__add__),
        {"choice": ["a", "b"]},
    ),
    keyed_case(
        "searched path outside data, model and train",
        st.sampled_from(["search.num_samples", "resources.cpu", "foo.bar", "model"]).map(space.__add__),
        {"choice": [1, 2]},
    ),
    value_case(
        "grid dimension with hyperopt",
        f"{space}model.hidden_size",
        st.lists(st.integers(1, 64), min_size=1, max_size=3).map(lambda v: {"grid": v}),
    ),
    value_case(
        "window key over a continuous range",
        f"{space}data.lookback",
        st.sampled_from([{"uniform": [4, 12]}, {"randint": [4, 12]}, {"loguniform": [4, 12]}]),
    ),
    entries_case(
        "condition on an unknown path",
        words.filter(lambda w: w not in SECTION_FIELDS["model"]).map(
            lambda w: {f"{space}model.dropout": {"uniform": [0.0, 0.3], "when": {f"model.{w}": 2}}}
        ),
        lambda chosen: f"{space}model.dropout.when.{next(iter(chosen[f'{space}model.dropout']['when']))}",
    ),
    value_case(
        "distribution that is not a mapping",
        f"{space}model.hidden_size",
        st.integers() | text | st.lists(st.integers()),
    ),
    value_case(
        "quniform step <= 0",
        f"{space}model.dropout",
        st.floats(max_value=0.0, allow_infinity=False).map(lambda q: {"quniform": [0.0, 0.5, q]}),
    ),
    # values that conflict with each other
    entries_case(
        "projection not below hidden size",
        st.integers(1, 64).map(lambda h: {"model.hidden_size": h, "model.proj_size": h}),
        "model.proj_size",
    ),
    entries_case(
        "nesterov without sgd momentum",
        st.sampled_from(["adam", "adamw", "rmsprop"]).map(lambda o: {"train.optimizer": o, "train.nesterov": True}),
        "train.nesterov",
    ),
    value_case("mode against the metric", "search.mode", st.just("max")),
    entries_case(
        "last rung after the last epoch",
        st.integers(1, 20).map(lambda e: {"train.max_epochs": e, "search.max_t": e + 1}),
        "search.max_t",
    ),
    value_case("pbt with a model-based searcher", "search.scheduler", st.just("pbt")),
    entries_case(
        "val + test fractions leave too little to train on",
        st.floats(0.45, 0.89).map(lambda v: {"data.val_fraction": v, "data.test_fraction": 0.9 - v / 2}),
        "data.val_fraction",
    ),
    entries_case(
        "stop on a metric trials do not report",
        words.filter(lambda w: w not in METRICS).map(lambda m: {"search.stop": {m: 1.0}}),
        lambda chosen: f"search.stop.{next(iter(chosen['search.stop']))}",
    ),
    entries_case(
        "starting point outside the space",
        st.floats(0.011, 9.0).map(lambda lr: {"search.points_to_evaluate": [{"train.lr": lr}]}),
        "search.points_to_evaluate[0].train.lr",
    ),
    entries_case(
        "a lag listed twice",
        st.lists(st.integers(1, 5), min_size=2, max_size=4)
        .filter(lambda v: len(set(v)) < len(v))
        .map(lambda v: {"data.lags": v}),
        lambda chosen: f"data.lags[{first_repeat(chosen['data.lags'])}]",
    ),
    value_case(
        "model name with / or :", "tracking.register_as", st.tuples(words, st.sampled_from("/:"), words).map("".join)
    ),
    value_case(
        "sweep name that is a path",
        "name",
        st.sampled_from([".", ".."]) | st.tuples(st.sampled_from(["../", "/", "a/", "..\\"]), words).map("".join),
    ),
    value_case("target that is also categorical", "data.categorical", st.just(["co2"])),
    value_case("unknown builtin data set", "data.source", words.map("builtin:".__add__)),
    value_case("source path with a NUL byte", "data.source", words.map(lambda w: f"{w}\0.csv")),
    # bad --set syntax
    flag_case("--set without =", "--set", words),
    flag_case(
        "--set with an empty key part",
        "--set",
        st.sampled_from([".data=1", "data..lookback=3", "train.=3", "=3", " . =1"]),
    ),
    flag_case(
        "--set below a value that is not a section",
        lambda flag: flag.partition("=")[0],
        words.map(lambda w: f"data.lookback.{w}=3"),
    ),
    # the config file itself
    file_case(
        "YAML syntax error",
        st.tuples(words, st.sampled_from(["[", "{", "[a, {"]), words).map(
            lambda p: f"name: x\n{p[0]}: {p[1]}{p[2]}\n".encode()
        ),
    ),
    file_case("tab indentation", words.map(lambda w: f"data:\n\t{w}: 1\n".encode())),
    file_case(
        "YAML that is not a mapping",
        (st.lists(st.integers(), min_size=1) | st.integers() | text).map(lambda v: yaml.safe_dump(v).encode()),
    ),
    file_case("empty file: no data section", st.sampled_from([b"", b"\n", b"# nothing\n", b"  \n"]), "data.source"),
    file_case("sections but no data", st.just(yaml.safe_dump({"model": {"hidden_size": 8}}).encode()), "data.source"),
    file_case("a key given twice", st.sampled_from([b"name: a\nname: b\n", b"data:\n  lookback: 3\n  lookback: 4\n"])),
    file_case(
        "a Python tag",
        st.sampled_from(
            [
                "!!python/object/apply:os.system",
                "!!python/name:os.system",
                "!!python/object/new:os.system",
                "!!python/module:os",
            ]
        ).map(lambda tag: f"name: {tag} ['echo hi']\n".encode()),
    ),
    file_case("not UTF-8", st.binary(max_size=4).map(lambda b: b"name: x\n# \xff" + b + b"\n")),  # 0xff: never UTF-8
    file_case("nested too deeply", st.integers(1000, 1100).map(lambda n: b"[" * n + b"]" * n), examples=2),
    # the data
    data_case("missing target column", "data.target", csv_of(lambda d: {"t": list(range(9)), "z": wave(9)})),
    data_case(
        "missing target column, Parquet",
        "data.target",
        parquet_of({"t": list(range(9)), "z": wave(9)}),
        source="series.parquet",
    ),
    data_case(
        "text target",
        "data.target",
        csv_of(lambda d: series(d.draw(st.lists(words.map("v".__add__), min_size=ROWS, max_size=ROWS)))),
    ),
    data_case("target with no value", "data.target", csv_of(lambda d: series([""] * ROWS))),
    data_case(
        "all-NaN target, Parquet",
        "data.target",
        parquet_of({"t": list(range(9)), "y": [math.nan] * 9}),
        source="series.parquet",
    ),
    data_case(
        "too few rows for lookback + horizon",
        "data.lookback",
        csv_of(lambda d: series(wave(d.draw(st.integers(1, 12), label="rows")))),
    ),
    data_case(
        "repeated timestamps",
        "data.time_column",
        csv_of(lambda d: series(wave(), [i // d.draw(st.integers(2, 4), label="repeats") for i in range(ROWS)])),
    ),
    data_case(
        "times that are not times",
        "data.time_column",
        csv_of(lambda d: series(wave(), [f"{d.draw(words, label='prefix')}{i}" for i in range(ROWS)])),
    ),
    data_case(
        "a missing time",
        "data.time_column",
        csv_of(lambda d: series(wave(), one_value_replaced(list(range(ROWS)), st.just(""))(d))),
    ),
    data_case(
        "infinite or float32-overflowing values",
        "data.target",
        csv_of(lambda d: series(one_value_replaced(wave(), st.sampled_from(["inf", "-inf", "1e39", "-3.5e38"]))(d))),
    ),
    data_case("empty CSV", "data.source", raw_bytes(st.just(b""))),
    data_case("header-only CSV", "data.source", raw_bytes(st.just(b"t,y\n"))),
    data_case("ragged CSV", "data.source", raw_bytes(st.just(b"t,y\n1,2\n3,4,5\n"))),
    data_case("corrupt Parquet", "data.source", raw_bytes(st.binary(max_size=200)), source="series.parquet"),
    data_case("corrupt gzip CSV", "data.source", raw_bytes(st.binary(max_size=50)), source="series.csv.gz"),
    data_case("unknown file format", "data.source", csv_of(lambda d: series(wave())), source="series.xlsx"),
    data_case("missing data file", "data.source", lambda d, p: None),
    data_case("empty data folder", "data.source", lambda d, p: p.mkdir(), source="folder"),
    data_case(
        "split marks other than train, val, test",
        "data.split_column",
        csv_of(lambda d: series(wave(), s=[d.draw(words.filter(lambda w: w not in ("train", "val", "test")))] * ROWS)),
        split_column="s",
    ),
    data_case(
        "a missing series id",
        "data.id_column",
        parquet_of(series(wave(), id=["a"] * (ROWS - 1) + [None])),
        source="series.parquet",
        id_column="id",
    ),
    data_case("more folds than rows", "data.folds", csv_of(lambda d: series(wave())), validation="cv", folds=10**6),
    data_case("lookback beyond every series", "data.lookback", csv_of(lambda d: series(wave())), lookback=10**12),
    data_case("lag history beyond every series", "data.lags", csv_of(lambda d: series(wave())), lags=[10**9]),
    data_case("text feature", "data.features", csv_of(lambda d: series(wave(), w=["x"] * ROWS)), features=["y", "w"]),
    data_case(
        "classify with one class",
        "data.target",
        csv_of(
            lambda d: {
                "id": [i // 5 for i in range(60)],
                "step": [i % 5 for i in range(60)],
                "x": wave(60),
                "label": ["only"] * 60,
            }
        ),
        **CLASSIFY,
    ),
]


# --- running the CLI ------------------------------------------------------------------------------------------


def run_in_process(command: str, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([command, *argv])
    return code, out.getvalue(), err.getvalue()


def ray_state() -> tuple[frozenset[str], bool]:
    """Ray modules imported so far, and whether Ray is initialised in this process."""
    modules = frozenset(m for m in sys.modules if m == "ray" or m.startswith("ray."))
    return modules, bool(modules) and sys.modules["ray"].is_initialized()


def assert_one_error_line(case: Case, code: int, out: str, err: str, field: str) -> None:
    lines = err.splitlines()
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith(f"error: {field}: "), f"expected the line to name {field!r}: {lines[0]}"
    assert case.says in lines[0] and "Traceback" not in err and out == ""


def fingerprint(case: Case, argv: list[str], folder: Path) -> str:
    """What makes an input distinct: its kind, arguments and file bytes (the temporary folder's name aside)."""
    digest = hashlib.sha256(case.kind.encode())
    for arg in argv:
        digest.update(arg.replace(str(folder), "<dir>").encode(errors="surrogatepass"))
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    """Print how many distinct bad inputs this run tried (each one passed, or the run failed)."""
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter and capture and TRIED:
        with capture.global_and_fixture_disabled():  # past pytest's output capture, like its own summary
            reporter.write_line(f"\nbad input: {len(TRIED)} distinct inputs of {len(CASES)} kinds tried")


def test_the_catalogue_holds_at_least_50_kinds_of_bad_input():
    assert len({case.kind for case in CASES}) == len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_bad_input_is_one_error_line_and_exit_2_before_ray(case: Case):
    @settings(max_examples=case.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-input-") as tmp:
            folder = Path(tmp)
            argv, field = case.build(data, folder)
            before = ray_state()
            for command in ("validate", "tune"):  # tune only once validate refused it: it must never start a sweep
                assert_one_error_line(case, *run_in_process(command, argv), field)
            assert ray_state() == before, "Ray was imported or started"
            TRIED.add(fingerprint(case, argv, folder))

    check()


# --- the real executable --------------------------------------------------------------------------------------


def session_processes(sid: int) -> list[str]:
    """Command lines of live processes in session `sid` (Ray's raylet and GCS would stay in the CLI's)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command: state, ppid, pgrp, session
            if int(fields[3]) == sid:
                found.append((stat.parent / "cmdline").read_text(errors="replace").replace("\0", " "))
        except OSError:  # the process ended while we looked
            continue
    return found


@settings(max_examples=SUBPROCESS_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=st.sampled_from(CASES), command=st.sampled_from(["validate", "tune"]), data=st.data())
def test_the_real_cli_prints_one_line_exits_2_and_never_imports_or_starts_ray(case: Case, command: str, data):
    with tempfile.TemporaryDirectory(prefix="lstm-ray-bad-input-") as tmp:
        folder, ray_tmp, temp = Path(tmp) / "input", Path(tmp) / "ray", Path(tmp) / "tmp"
        for path in (folder, ray_tmp, temp):
            path.mkdir()
        argv, field = case.build(data, folder)
        child = subprocess.Popen(
            [sys.executable, "-X", "importtime", str(LSTM_RAY), command, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=os.environ | {"RAY_TMPDIR": str(ray_tmp), "TMPDIR": str(temp)},
            start_new_session=True,
        )
        out, err = child.communicate(timeout=120)
        imported = [line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")]
        said = "\n".join(line for line in err.splitlines() if not line.startswith("import time:"))
        assert_one_error_line(case, child.returncode, out, said, field)
        assert "lstm_ray.cli" in imported and not [m for m in imported if m.split(".")[0] == "ray"]
        assert list(ray_tmp.iterdir()) == [] and list(temp.iterdir()) == []
        assert session_processes(child.pid) == []
        TRIED.add(fingerprint(case, argv, folder))
