"""Which columns of a table play which role: targets, inputs, time, series id, split, from the `data:` config
and the defaults of a bundled set, checked against the table before anything is read into arrays.

    spec, split_column = resolve_columns(cfg.data, table)   # RowSpec(targets=["co2"], numeric=["co2"], ...)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pyarrow as pa

from lstm_ray.config import DataConfig
from lstm_ray.data.builtin import BUILTIN_DATASETS
from lstm_ray.data.layout import RowSpec
from lstm_ray.data.sources import BUILTIN_PREFIX
from lstm_ray.errors import DataError


def resolve_columns(cfg: DataConfig, table: pa.Table) -> tuple[RowSpec, str | None]:
    """The row recipe for `table` and the split column, taking defaults from a builtin set and checking every
    named column exists. Classify inputs default to every numeric column that is not id, time, split or label."""
    known = _builtin_defaults(cfg)
    targets = cfg.targets or _as_list(known.get("target"))
    time_column = cfg.time_column or known.get("time_column")
    id_column = cfg.id_column or known.get("id_column")
    split_column = cfg.split_column or known.get("split_column")
    if not targets:
        raise DataError("data.target", f"is required; pick a column from {', '.join(table.column_names)}")
    layout = [c for c in (time_column, id_column, split_column) if c]
    features = cfg.features or known.get("features")
    if features is None and cfg.task == "classify":
        features = [c for c in table.column_names if c not in [*layout, *targets, *cfg.categorical]]
        features = [c for c in features if _is_numeric(table.schema.field(c).type)]
    elif features is None:
        features = list(targets)
    for key, names in (
        ("data.target", targets),
        ("data.features", features),
        ("data.categorical", cfg.categorical),
        ("data.time_column", [time_column]),
        ("data.id_column", [id_column]),
        ("data.split_column", [split_column]),
    ):
        for name in names:
            if name is not None and name not in table.column_names:
                raise DataError(key, f"column {name!r} not in the data; columns are {', '.join(table.column_names)}")
    if cfg.task == "classify" and set(targets) & set(features):
        raise DataError("data.features", f"the label {targets[0]!r} cannot be an input; remove it from features")
    numeric = [c for c in features if c not in cfg.categorical]
    if not numeric and not cfg.categorical:
        raise DataError("data.features", "no input column; name numeric columns in data.features")
    spec = RowSpec(
        task=cfg.task,
        targets=list(targets),
        numeric=numeric,
        categorical=list(cfg.categorical),
        id_column=id_column,
        time_column=time_column,
        missing=cfg.missing,
        lags=list(cfg.lags),
        differences=list(cfg.differences),
    )
    if cfg.task == "classify" and id_column is None:
        raise DataError("data.id_column", "classify needs the column naming each row's sequence; set data.id_column")
    return spec, split_column


def _builtin_defaults(cfg: DataConfig) -> dict[str, Any]:
    if not cfg.source.startswith(BUILTIN_PREFIX):
        return {}
    known = BUILTIN_DATASETS[cfg.source.removeprefix(BUILTIN_PREFIX)]
    if known.task != cfg.task:
        raise DataError("data.task", f"builtin:{known.name} is a {known.task} set; set data.task: {known.task}")
    return asdict(known)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _is_numeric(kind: pa.DataType) -> bool:
    """Numbers as the rows read them: dictionary columns by their values, decimals as float64."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return any(
        is_kind(kind)
        for is_kind in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    )
