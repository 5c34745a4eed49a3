"""Real data sets shipped inside the package, so the quickstart runs with no network.

    >>> from lstm_ray.data.builtin import load_builtin
    >>> load_builtin("co2").num_rows
    2284

The files live in `lstm_ray/data/sets/`; `SOURCES.md` there gives each file's origin, licence and the exact
conversion. This registry holds real files only; the synthetic generators are in `lstm_ray.data.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["BUILTIN_DATASETS", "BuiltinDataset", "describe_builtin", "load_builtin"]

TIMESTAMP = pa.timestamp("s")  # unit of every parsed date column (dates have no sub-second part)


@dataclass(frozen=True)
class BuiltinDataset:
    """One shipped file and the defaults a run takes from it when the config leaves them out.

    Forecast sets are wide: one row per time step, `time_column` a timestamp. Classify sets are long: one row
    per (sequence, step), with `id_column` naming the sequence, `time_column` the integer step within it,
    `split_column` the train/test split the original archive defines, and `target` the per-sequence label.
    `features` lists the default input columns besides the target; None means the target alone.
    """

    name: str  # what users type after `builtin:`
    file: str  # file name inside lstm_ray/data/sets/
    task: Literal["forecast", "classify"]
    description: str  # one line for `lstm-ray datasets`
    source: str  # who published the data (full citation in SOURCES.md)
    licence: str
    target: str | list[str]  # default column(s) to predict
    time_column: str | None  # orders the rows (within a sequence for classify sets)
    id_column: str | None = None  # sequence id, classify sets only
    split_column: str | None = None  # "train"/"test" as the original archive splits it
    features: list[str] | None = None  # default input columns; None: the target alone


_MACRO_SERIES = [
    "realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop", "infl",
    "realint",
]  # fmt: skip
_LPC = [f"lpc{i}" for i in range(1, 13)]  # the 12 LPC cepstrum coefficients of one speech frame

BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "co2": BuiltinDataset(
        name="co2",
        file="co2.csv",
        task="forecast",
        description="Mauna Loa weekly atmospheric CO2 (ppmv), 1958-2001; 59 weeks missing (empty cells)",
        source="Keeling & Whorf, Scripps Institution of Oceanography, via CDIAC / statsmodels",
        licence="public domain",
        target="co2",
        time_column="date",
    ),
    "macro": BuiltinDataset(
        name="macro",
        file="macro.csv",
        task="forecast",
        description="US quarterly macroeconomic series (GDP, consumption, CPI, rates...), 1959Q1-2009Q3",
        source="FRED (Federal Reserve Bank of St. Louis) and BLS, compiled by statsmodels",
        licence="public domain",
        target="realgdp",
        time_column="date",
        features=_MACRO_SERIES,  # the target's own history first, then the other series
    ),
    "seattle_weather": BuiltinDataset(
        name="seattle_weather",
        file="seattle_weather.csv",
        task="forecast",
        description="Daily Seattle weather 2012-2015: max/min temperature (C), rain (mm), wind (m/s)",
        source="NOAA daily observations for Seattle, WA, via vega_datasets",
        licence="public domain (NOAA)",
        target="temp_max",
        time_column="date",
        features=["temp_max", "temp_min", "precipitation", "wind"],
    ),
    "japanese_vowels": BuiltinDataset(
        name="japanese_vowels",
        file="japanese_vowels.csv",
        task="classify",
        description="640 utterances of /ae/ by 9 speakers, 12 LPC coefficients, 7-29 steps; label: speaker",
        source="Kudo, Toyama & Shimbo (1999), UCI Machine Learning Repository, via aeon",
        licence="CC BY 4.0",
        target="label",
        time_column="step",
        id_column="sequence_id",
        split_column="split",
        features=_LPC,
    ),
}


def load_builtin(name: str) -> pa.Table:
    """The shipped table `name`, read from the installed package (no network, no cache).

    Date columns come back as timestamp[s]; value columns as float64 with missing cells as nulls (co2 has
    59); id, step and label columns as int64; the split column as string.
    Raises ValueError listing the available names when `name` is unknown.
    """
    dataset = _lookup(name)
    ref = resources.files("lstm_ray.data").joinpath("sets", dataset.file)
    with ref.open("rb") as stream:
        return pacsv.read_csv(stream, convert_options=pacsv.ConvertOptions(column_types=_column_types(dataset)))


def describe_builtin() -> list[dict[str, object]]:
    """One dict per shipped set, in registry order, for a listing: name, task, rows, columns (count),
    column_names, size_kb (of the shipped file), description, source, licence; the columns a run takes by
    default (target, id_column, time_column, split_column, features) and `config`, a one-line YAML `data:`
    mapping naming them, to paste into an experiment file. Reads every file."""
    rows = []
    for dataset in BUILTIN_DATASETS.values():
        table = load_builtin(dataset.name)
        size = resources.files("lstm_ray.data").joinpath("sets", dataset.file).read_bytes()
        rows.append(
            {
                "name": dataset.name,
                "task": dataset.task,
                "rows": table.num_rows,
                "columns": table.num_columns,
                "column_names": table.column_names,
                "size_kb": round(len(size) / 1024, 1),
                "description": dataset.description,
                "source": dataset.source,
                "licence": dataset.licence,
                **_roles(dataset),
                "config": config_line(dataset),
            }
        )
    return rows


def config_line(dataset: BuiltinDataset) -> str:
    """`data: {source: builtin:NAME, task: ..., target: ..., ...}`: the set's defaults spelled out, so a user
    sees which key names which column. The features stay out (the set's default list applies; it can be long)."""
    keys = {"source": f"builtin:{dataset.name}", "task": dataset.task}
    keys |= {k: v for k, v in _roles(dataset).items() if k != "features" and v is not None}
    return "data: {" + ", ".join(f"{key}: {value}" for key, value in keys.items()) + "}"


def _roles(dataset: BuiltinDataset) -> dict[str, object]:
    """The columns a run reads by default: a forecast set's features default to its target."""
    target = dataset.target if isinstance(dataset.target, str) else f"[{', '.join(dataset.target)}]"
    features = dataset.features or ([target] if isinstance(dataset.target, str) else list(dataset.target))
    return {
        "target": target,
        "id_column": dataset.id_column,
        "time_column": dataset.time_column,
        "split_column": dataset.split_column,
        "features": features,
    }


def _lookup(name: str) -> BuiltinDataset:
    if name not in BUILTIN_DATASETS:
        available = ", ".join(BUILTIN_DATASETS)
        raise ValueError(f"unknown builtin data set {name!r}; available: {available}")
    return BUILTIN_DATASETS[name]


def _column_types(dataset: BuiltinDataset) -> dict[str, pa.DataType]:
    """Fixed types, so a file never changes type through inference (e.g. a float column of whole numbers)."""
    targets = [dataset.target] if isinstance(dataset.target, str) else list(dataset.target)
    types: dict[str, pa.DataType] = {}
    if dataset.task == "forecast":
        types.update({c: pa.float64() for c in [*targets, *(dataset.features or [])]})
        if dataset.time_column is not None:
            types[dataset.time_column] = TIMESTAMP
    else:
        types.update({c: pa.float64() for c in dataset.features or []})
        types.update({c: pa.int64() for c in [dataset.id_column, dataset.time_column, *targets] if c})
        if dataset.split_column is not None:
            types[dataset.split_column] = pa.string()
    return types
