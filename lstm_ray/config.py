"""The experiment file: schema, defaults, `--set` overrides and the search-space DSL.

    cfg = load_config("configs/quickstart.yaml", overrides=["train.max_epochs=3"])

Every user mistake raises `ConfigError` naming the key, the bad value and the fix. Nothing here imports torch
or Ray, so `lstm-ray validate` answers in well under a second.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lstm_ray.errors import ConfigError
from lstm_ray.search_space import Distribution, parse_distribution

__all__ = [
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "ResourcesConfig",
    "SearchConfig",
    "StorageConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_params",
    "load_config",
    "parse_config",
]


@dataclass
class DataConfig:
    source: str = ""  # builtin:NAME, or a .parquet / .csv / .feather file or URI
    task: Literal["forecast", "classify"] = "forecast"
    target: str | list[str] | None = None  # column(s) to predict; builtin sets bring a default
    features: list[str] | None = None  # input columns; default: the target(s) alone
    time_column: str | None = None  # sorts rows; builtin sets bring a default
    lookback: int = 24  # time steps the model sees
    horizon: int = 1  # time steps it predicts
    stride: int = 1  # steps between consecutive training windows
    val_fraction: float = 0.15  # chronological share of rows for validation
    test_fraction: float = 0.15  # chronological share of rows held out for the final test
    scaling: Literal["standard", "minmax", "none"] = "standard"  # fitted on the training rows only
    missing: Literal["interpolate", "ffill", "drop", "error"] = "interpolate"  # what to do with NaN rows

    def check(self) -> None:
        if not self.source:
            raise ConfigError("data.source", "is required; use builtin:co2 or a path to a .parquet/.csv file")
        _at_least("data.lookback", self.lookback, 1)
        _at_least("data.horizon", self.horizon, 1)
        _at_least("data.stride", self.stride, 1)
        _in_range("data.val_fraction", self.val_fraction, 0.0, 1.0, high_open=True, low_open=True)
        _in_range("data.test_fraction", self.test_fraction, 0.0, 1.0, high_open=True, low_open=True)
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError(
                "data.val_fraction",
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} leaves too little "
                "to train on; keep the sum below 0.9",
            )
        if self.task == "classify":
            raise ConfigError("data.task", "'classify' is not available yet; use 'forecast'")

    @property
    def targets(self) -> list[str]:
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)


@dataclass
class ModelConfig:
    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # recurrent cell type
    hidden_size: int = 32  # units per layer (per direction)
    num_layers: int = 1  # stacked recurrent layers
    dropout: float = 0.0  # between stacked layers and before the head, in [0, 1)
    bidirectional: bool = False  # read the window both ways

    def check(self) -> None:
        _at_least("model.hidden_size", self.hidden_size, 1)
        _at_least("model.num_layers", self.num_layers, 1)
        _in_range("model.dropout", self.dropout, 0.0, 1.0, high_open=True)


@dataclass
class TrainConfig:
    max_epochs: int = 20  # epochs per trial (ASHA's max_t)
    batch_size: int = 64  # windows per gradient step
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0  # L2 penalty through the optimiser
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    seed: int = 0  # seeds torch, numpy and Python per trial

    def check(self) -> None:
        _at_least("train.max_epochs", self.max_epochs, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        _in_range("train.lr", self.lr, 0.0, 10.0, low_open=True)
        _at_least("train.weight_decay", self.weight_decay, 0.0)
        _at_least("train.grad_clip", self.grad_clip, 0.0)


@dataclass
class SearchConfig:
    algorithm: Literal["hyperopt", "random", "grid"] = "hyperopt"  # who proposes configurations
    scheduler: Literal["asha", "fifo"] = "asha"  # who stops poor trials early
    metric: str = "val_rmse"  # what the search optimises (a validation metric)
    mode: Literal["min", "max"] = "min"
    num_samples: int = 16  # trials to run (for grid: repeats of the whole grid)
    max_concurrent: int | None = None  # trials at once; default: as many as the resources allow
    grace_period: int = 2  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 2  # ASHA: keep 1/reduction_factor of the trials at each rung
    n_initial_points: int = 4  # HyperOpt: random proposals before TPE takes over
    seed: int | None = 0  # seeds the searcher, so a sweep proposes the same configurations
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)  # hyperopt: configurations tried first
    space: dict[str, Any] = field(default_factory=dict)  # dotted config path -> distribution

    def check(self) -> None:
        _at_least("search.num_samples", self.num_samples, 1)
        if self.max_concurrent is not None:
            _at_least("search.max_concurrent", self.max_concurrent, 1)
        _at_least("search.grace_period", self.grace_period, 1)
        _at_least("search.reduction_factor", self.reduction_factor, 2)
        _at_least("search.n_initial_points", self.n_initial_points, 1)


@dataclass
class ResourcesConfig:
    cpu: float = 1.0  # CPU cores per trial (also torch's thread count)
    gpu: float = 0.0  # GPUs per trial; fractions pack several trials on one GPU

    def check(self) -> None:
        _at_least("resources.cpu", self.cpu, 0.0)
        _at_least("resources.gpu", self.gpu, 0.0)
        if self.cpu == 0 and self.gpu == 0:
            raise ConfigError("resources.cpu", "a trial needs a CPU or a GPU; set resources.cpu to 1")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ConfigError("resources.gpu", f"above 1 it must be a whole number, got {self.gpu!r}")


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"  # MLflow tracking URI: sqlite:///file.db, http://host:5000, ...
    experiment: str | None = None  # MLflow experiment; default: the config's name

    def check(self) -> None:
        if not self.uri:
            raise ConfigError("tracking.uri", "must not be empty; use sqlite:///mlflow.db or http://HOST:5000")


@dataclass
class StorageConfig:
    path: str = "lstm-ray-results"  # where Ray Tune keeps results and checkpoints (local dir, NFS, s3://)

    def check(self) -> None:
        if not self.path:
            raise ConfigError("storage.path", "must not be empty; use lstm-ray-results or s3://bucket/prefix")


@dataclass
class ExperimentConfig:
    name: str = ""  # names the sweep, its storage folder and (by default) the MLflow experiment
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def parsed_space(self) -> dict[str, Distribution]:
        """The search space as parsed distributions (already validated by `parse_config`)."""
        return {path: parse_distribution(f"search.space.{path}", spec) for path, spec in self.search.space.items()}


WINDOW_KEYS = ("data.lookback", "data.horizon", "data.stride")  # searchable only over finite sets
SECTIONS = ("data", "model", "train", "search", "resources", "tracking", "storage")


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply `key=value` overrides and validate everything."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file {str(path)!r} not found; pass the path to an experiment .yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("", f"{path} is not valid YAML: {_one_line(err)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{path} must hold a mapping of sections (name, data, model, ...)")
    for item in overrides or []:
        apply_override(raw, item)
    if not raw.get("name"):
        raw["name"] = path.stem
    return parse_config(raw)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, lists, mappings)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}; e.g. --set train.max_epochs=3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if key.startswith("search.space."):
        raw.setdefault("search", {}).setdefault("space", {})[key.removeprefix("search.space.")] = value
        return
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(key, f"{part!r} is not a section; check the key")
        node = child
    node[leaf] = value


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an `ExperimentConfig` from plain data (a parsed YAML mapping)."""
    cfg = _build(ExperimentConfig, raw, "")
    if not cfg.name:
        raise ConfigError("name", "is required; give the sweep a short name such as co2-lstm")
    for section in SECTIONS:
        getattr(cfg, section).check()
    _check_search(cfg)
    return cfg


def apply_params(cfg: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """A copy of `cfg` with dotted-path values (one trial's hyperparameters) set."""
    raw = cfg.to_dict()
    for path, value in params.items():
        section, _, key = path.partition(".")
        raw[section][key] = value.item() if hasattr(value, "item") else value
    return parse_config(raw)


def _check_search(cfg: ExperimentConfig) -> None:
    search = cfg.search
    space = search.space
    if search.algorithm == "grid" and not space:
        raise ConfigError("search.space", "grid search needs at least one dimension; add e.g. model.hidden_size")
    for path, spec in space.items():
        key = f"search.space.{path}"
        dist = parse_distribution(key, spec)
        _check_search_path(cfg, key, path)
        if search.algorithm == "hyperopt" and dist.kind == "grid":
            raise ConfigError(
                key,
                "grid dimensions cannot be mixed with hyperopt; use {choice: [...]} or search.algorithm: grid",
            )
        if search.algorithm == "grid" and not dist.is_finite:
            raise ConfigError(key, f"grid search needs a finite set of values, got {dist.kind}; use {{grid: [...]}}")
        if path in WINDOW_KEYS and not dist.is_finite:
            raise ConfigError(
                key,
                f"{path} must be searched over a finite set so windows are built once per value; use {{choice: [...]}}",
            )
        for value in dist.representative_values():
            _check_value(cfg, key, path, value)
    for i, point in enumerate(search.points_to_evaluate):
        key = f"search.points_to_evaluate[{i}]"
        if search.algorithm != "hyperopt":
            raise ConfigError(key, "only hyperopt takes points_to_evaluate; remove them or use hyperopt")
        for path, value in point.items():
            if path not in space:
                raise ConfigError(f"{key}.{path}", "is not in search.space; add it there or drop it here")
            _check_value(cfg, f"{key}.{path}", path, value)
    if not search.metric.startswith("val_"):
        raise ConfigError(
            "search.metric",
            f"must be a validation metric (val_rmse, val_mae, val_loss), got {search.metric!r}",
        )


def _check_search_path(cfg: ExperimentConfig, key: str, path: str) -> None:
    section, _, name = path.partition(".")
    tunable = [s for s in SECTIONS if s not in ("search", "tracking", "storage", "resources")]
    if section not in tunable or not name:
        raise ConfigError(key, f"must start with one of {', '.join(tunable)} (e.g. model.hidden_size)")
    fields = [f.name for f in dataclasses.fields(getattr(cfg, section))]
    if name not in fields:
        raise ConfigError(key, f"{path!r} names no config field{_suggest(name, fields)}")
    if path in ("data.source", "data.task", "data.target", "data.features", "data.time_column"):
        raise ConfigError(key, f"{path} describes the data set and cannot be searched")


def _check_value(cfg: ExperimentConfig, key: str, path: str, value: Any) -> None:
    """Validate that `value` is acceptable for config field `path` by building a config with it."""
    raw = cfg.to_dict()
    section, _, name = path.partition(".")
    raw[section][name] = value
    raw["search"]["space"] = {}
    try:
        trial = _build(ExperimentConfig, raw, "")
        getattr(trial, section).check()
    except ConfigError as err:
        detail = str(err).removeprefix(f"{err.key}: ")
        raise ConfigError(key, f"value {value!r} is not valid for {path}: {detail}") from None


# --- generic strict construction of dataclasses from YAML data ---------------------------------------


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        where = prefix or "the config file"
        raise ConfigError(prefix, f"{where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(path, f"unknown key{_suggest(str(key), names)}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, path)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(err)
        raise errors[-1]
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(path, f"{value!r} is not one of {choices}{_suggest(str(value), list(allowed))}")
        return value
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {value!r}")
        return [_coerce(item_hint, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        return dict(value)
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(path, f"expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(path, f"expected a finite number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected text, got {value!r}")
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(key, f"must be >= {low:g}, got {value!r}")


def _in_range(
    key: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(key, f"must be in {interval}, got {value!r}")


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
