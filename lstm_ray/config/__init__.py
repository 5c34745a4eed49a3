"""The experiment file: schema, defaults, `--set` overrides and the search-space DSL.

    cfg = load_config("configs/quickstart.yaml", overrides=["train.max_epochs=3"])

Every user mistake raises `ConfigError` naming the key, the bad value and the fix. Nothing here imports torch
or Ray, so `lstm-ray validate` answers in well under a second.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lstm_ray.config.space import Distribution, parse_distribution
from lstm_ray.errors import ConfigError
from lstm_ray.train.metrics import TASK_METRICS

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
    source: str = ""  # builtin:NAME, or a .parquet / .csv / .feather / .arrow file, a directory, s3:// or gs://
    task: Literal["forecast", "classify"] = "forecast"  # next values of `target`, or one label per sequence
    target: str | list[str] | None = None  # column(s) to predict (classify: the label); builtin sets bring one
    features: list[str] | None = None  # input columns; default: the target(s) (classify: every numeric column)
    time_column: str | None = None  # sorts rows (within each id); gaps are reported
    id_column: str | None = None  # many series (forecast) or sequences (classify) in one long table
    split_column: str | None = None  # rows or ids marked train / val / test; without val, val comes from train
    lookback: int = 24  # time steps the model sees (forecast)
    horizon: int = 1  # time steps it predicts (forecast)
    stride: int = 1  # steps between consecutive training windows (forecast)
    val_fraction: float = 0.15  # share held out for validation (chronological, or stratified for classify)
    test_fraction: float = 0.15  # share held out for the final test
    scaling: Literal["standard", "minmax", "robust", "none"] = "standard"  # fitted on the training rows only
    missing: Literal["interpolate", "ffill", "drop", "mask", "error"] = "interpolate"  # mask adds <col>_missing
    categorical: list[str] = field(default_factory=list)  # category columns (inputs), vocabulary from train
    categorical_encoding: Literal["onehot", "index"] = "onehot"  # index: one code per category, 0 unknown
    calendar: list[Literal["hour", "weekday", "day", "month", "dayofyear"]] = field(default_factory=list)
    lags: list[int] = field(default_factory=list)  # forecast: add target(s) k rows back, e.g. [1, 52]
    differences: list[int] = field(default_factory=list)  # forecast: add target(t) - target(t - k)
    validation: Literal["holdout", "cv"] = "holdout"  # cv: trials report the mean and spread over folds
    folds: int = 5  # cv folds
    cv_scheme: Literal["expanding", "sliding", "kfold"] | None = None  # default: expanding (forecast), kfold
    seed: int = 0  # seeds the stratified splits and folds of classify

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
        _at_least("data.folds", self.folds, 2)
        for key, hint in (("target", "a column name"), ("features", "null (the target alone)")):
            if getattr(self, key) == []:
                raise ConfigError(f"data.{key}", f"is an empty list; give {hint}")
        for key in ("target", "features", "categorical", "calendar", "lags", "differences"):
            _check_unique(f"data.{key}", self.targets if key == "target" else getattr(self, key) or [])
        self._check_task_keys()
        for key, steps in (("data.lags", self.lags), ("data.differences", self.differences)):
            for step in steps:
                _at_least(key, step, 1)

    def _check_task_keys(self) -> None:
        if self.task == "classify":
            if len(self.targets) > 1:
                raise ConfigError("data.target", f"classify takes one label column, got {self.target!r}")
            for key in ("lags", "differences"):
                if getattr(self, key):
                    raise ConfigError(f"data.{key}", "applies to forecast only; remove it for task classify")
            if self.cv_scheme not in (None, "kfold"):
                raise ConfigError("data.cv_scheme", f"classify uses kfold, got {self.cv_scheme!r}; use kfold")
        elif self.cv_scheme == "kfold":
            raise ConfigError("data.cv_scheme", "kfold would train on the future; use expanding or sliding")
        if set(self.categorical) & set(self.targets):
            raise ConfigError("data.categorical", "a target cannot be categorical; remove it from data.categorical")

    @property
    def scheme(self) -> str:
        """The cross-validation scheme in force: cv_scheme, or the task's default."""
        return self.cv_scheme or ("kfold" if self.task == "classify" else "expanding")

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
    bidirectional: bool = False  # read the window both ways
    proj_size: int = 0  # LSTM only: project each hidden state down to this many units (0: off, < hidden_size)
    head: Literal["last", "mean", "attention"] = "last"  # time steps -> one vector: last step, mean, attention
    input_dropout: float = 0.0  # on every input time step, in [0, 1)
    dropout: float = 0.0  # between stacked layers and before the head, in [0, 1)
    recurrent_dropout: float = 0.0  # variational: one mask per sequence on the hidden state, in [0, 1)
    init: Literal["default", "xavier_uniform", "xavier_normal", "kaiming", "orthogonal"] = "default"  # hidden-hidden
    forget_bias: float | None = None  # LSTM only: the forget gate's initial bias, e.g. 1.0; null keeps torch's
    embedding_dim: int = 0  # > 0: the first input column holds token ids, embedded to this many units
    vocab_size: int = 0  # token ids lie in [0, vocab_size); embedding_vectors sets it from its file
    embedding_vectors: str | None = None  # text vector file (GloVe / word2vec text) the embedding starts from
    embedding_freeze: bool = False  # keep the pretrained vectors fixed while training
    init_from: str | None = None  # start from earlier weights: runs:/ID/model, models:/NAME/VERSION or a checkpoint
    freeze: list[str] = field(default_factory=list)  # fixed parts: embedding, recurrent, recurrent.K, attention, head

    def check(self) -> None:
        _at_least("model.hidden_size", self.hidden_size, 1)
        _at_least("model.num_layers", self.num_layers, 1)
        _at_least("model.proj_size", self.proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ConfigError(
                "model.proj_size", f"must be below hidden_size {self.hidden_size}, got {self.proj_size}; or 0 for off"
            )
        for key in ("input_dropout", "dropout", "recurrent_dropout"):
            _in_range(f"model.{key}", getattr(self, key), 0.0, 1.0, high_open=True)
        _at_least("model.embedding_dim", self.embedding_dim, 0)
        _at_least("model.vocab_size", self.vocab_size, 0)
        self._check_embedding()
        self._check_sources()
        self._check_freeze()

    def _check_embedding(self) -> None:
        if self.embedding_vectors is not None or self.embedding_dim == 0:
            return
        if self.vocab_size < 2:
            raise ConfigError(
                "model.vocab_size",
                f"an embedding needs the number of token ids (>= 2), got {self.vocab_size}; "
                "set model.vocab_size or model.embedding_vectors",
            )

    def _check_sources(self) -> None:
        if self.embedding_vectors is not None and not Path(self.embedding_vectors).is_file():
            raise ConfigError("model.embedding_vectors", f"file {self.embedding_vectors!r} not found")
        source = self.init_from
        if source is None or source.startswith(("runs:/", "models:/")):
            return
        if "://" in source or not Path(source).exists():
            raise ConfigError(
                "model.init_from",
                f"{source!r} is neither an MLflow model URI (runs:/RUN_ID/model, models:/NAME/VERSION) "
                "nor an existing checkpoint file or folder",
            )

    def _check_freeze(self) -> None:
        parts = ["embedding", "recurrent", *[f"recurrent.{k}" for k in range(self.num_layers)], "attention", "head"]
        for i, part in enumerate(self.freeze):
            key = f"model.freeze[{i}]"
            if part not in parts:
                raise ConfigError(
                    key, f"{part!r} is not a part of this model{_suggest(part, parts)}; parts: {', '.join(parts)}"
                )
            if part == "attention" and self.head != "attention":
                raise ConfigError(key, f"there is no attention with head {self.head!r}; use head: attention")
            if part == "embedding" and self.embedding_dim == 0 and self.embedding_vectors is None:
                raise ConfigError(key, "there is no embedding; set model.embedding_dim or model.embedding_vectors")


@dataclass
class TrainConfig:
    max_epochs: int = 20  # epochs per trial (ASHA's max_t)
    batch_size: int = 64  # windows per gradient step
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = 1e-3  # learning rate (the peak with onecycle)
    momentum: float = 0.0  # sgd and rmsprop, in [0, 1)
    nesterov: bool = False  # sgd: Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0  # L2 penalty through the optimiser (decoupled with adamw)
    l1: float = 0.0  # L1 penalty on the weights, added to the loss
    l2: float = 0.0  # L2 penalty on the weights, added to the loss
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    schedule: Literal["none", "step", "cosine", "plateau", "onecycle"] = "none"  # learning-rate schedule
    warmup_epochs: int = 0  # linear warm-up of the lr over this many epochs (onecycle: its rising phase)
    step_epochs: int = 10  # step: multiply the lr by lr_decay every step_epochs epochs
    lr_decay: float = 0.1  # step and plateau: the factor the lr is multiplied by, in (0, 1)
    plateau_patience: int = 2  # plateau: epochs without improvement before the lr drops
    patience: int = 0  # early stopping: epochs without improving search.metric before the trial ends (0: off)
    min_delta: float = 0.0  # early stopping: the smallest change that counts as an improvement
    tbptt: int = 0  # truncated backprop through time: gradients reach back this many steps (0: the whole window)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # automatic mixed precision (fp16 needs a GPU)
    seed: int = 0  # seeds torch, numpy and Python per trial

    def check(self) -> None:
        _at_least("train.max_epochs", self.max_epochs, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        _in_range("train.lr", self.lr, 0.0, 10.0, low_open=True)
        _in_range("train.momentum", self.momentum, 0.0, 1.0, high_open=True)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("train.nesterov", "needs optimizer sgd with momentum > 0; set train.momentum, e.g. 0.9")
        for key in ("weight_decay", "l1", "l2", "grad_clip", "min_delta"):
            _at_least(f"train.{key}", getattr(self, key), 0.0)
        for key in ("warmup_epochs", "patience", "tbptt"):
            _at_least(f"train.{key}", getattr(self, key), 0)
        _at_least("train.step_epochs", self.step_epochs, 1)
        _at_least("train.plateau_patience", self.plateau_patience, 0)
        _in_range("train.lr_decay", self.lr_decay, 0.0, 1.0, low_open=True, high_open=True)
        if self.schedule == "onecycle" and self.warmup_epochs >= self.max_epochs:
            raise ConfigError(
                "train.warmup_epochs",
                f"onecycle rises for warmup_epochs, which must be below max_epochs {self.max_epochs}",
            )


@dataclass
class ReevaluateConfig:
    top_k: int = 3  # retrain this many best configurations ...
    seeds: int = 3  # ... with this many new train.seed values each, and rank them by the mean

    def check(self) -> None:
        _at_least("search.reevaluate.top_k", self.top_k, 1)
        _at_least("search.reevaluate.seeds", self.seeds, 1)


@dataclass
class SearchConfig:
    algorithm: Literal["hyperopt", "optuna", "bayesopt", "random", "grid"] = "hyperopt"  # who proposes configurations
    scheduler: Literal["asha", "hyperband", "median", "pbt", "fifo"] = "asha"  # who stops (or evolves) trials
    metric: str = "val_rmse"  # what the search optimises (a validation metric)
    mode: Literal["min", "max"] = "min"
    num_samples: int = 16  # trials to run (for grid: repeats of the whole grid)
    max_trials: int | None = None  # cap on trials started, grid repeats included; default: no cap
    time_budget: float | str | None = None  # wall clock for the sweep: seconds, or "90s", "30m", "2h"
    stop: dict[str, float] = field(default_factory=dict)  # {val_rmse: 0.5}: end the sweep once a trial gets there
    max_concurrent: int | None = None  # trials at once; default: as many as the resources allow
    grace_period: int = 2  # asha, median: epochs every trial gets before it can be stopped
    reduction_factor: int = 2  # asha, hyperband: keep 1/reduction_factor of the trials at each rung
    brackets: int = 1  # asha: brackets whose first rungs are staggered (1: plain successive halving)
    max_t: int | None = None  # asha, hyperband: the epoch of the last rung; default: train.max_epochs
    perturbation_interval: int = 2  # pbt: epochs between exploiting a better trial and perturbing its values
    n_initial_points: int = 4  # hyperopt, optuna, bayesopt: random proposals before the model takes over
    max_history: int | None = 1000  # hyperopt: scored trials TPE fits (best quarter + latest); null: all
    seed: int | None = 0  # seeds the searcher, so a sweep proposes the same configurations
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)  # configurations tried first
    warm_start: list[str] = field(default_factory=list)  # earlier sweeps to learn from: experiment names, run ids
    reevaluate: ReevaluateConfig | None = None  # {top_k: 3, seeds: 3}: retrain the best with new seeds
    space: dict[str, Any] = field(default_factory=dict)  # dotted config path -> distribution

    def check(self) -> None:
        _at_least("search.num_samples", self.num_samples, 1)
        for key in ("max_trials", "max_concurrent", "max_t"):
            if getattr(self, key) is not None:
                _at_least(f"search.{key}", getattr(self, key), 1)
        _at_least("search.grace_period", self.grace_period, 1)
        _at_least("search.reduction_factor", self.reduction_factor, 2)
        _at_least("search.brackets", self.brackets, 1)
        _at_least("search.perturbation_interval", self.perturbation_interval, 1)
        _at_least("search.n_initial_points", self.n_initial_points, 1)
        if self.max_history is not None and self.max_history < self.n_initial_points:
            raise ConfigError(
                "search.max_history",
                f"must be at least search.n_initial_points ({self.n_initial_points}), got {self.max_history}; "
                "null keeps every trial",
            )
        if self.time_budget is not None and self.time_budget_s <= 0:
            raise ConfigError("search.time_budget", f"must be a positive duration, got {self.time_budget!r}")
        if self.reevaluate is not None:
            self.reevaluate.check()

    @property
    def time_budget_s(self) -> float | None:
        """`time_budget` in seconds (None: no limit)."""
        if self.time_budget is None or isinstance(self.time_budget, float):
            return self.time_budget
        return _duration("search.time_budget", self.time_budget)


# Below this a trial's process cannot even hold Python, torch and its data (about 300 MB before training).
MIN_TRIAL_MEMORY_MB = 512


@dataclass
class ResourcesConfig:
    cpu: float = 1.0  # CPU cores per trial (also torch's thread count)
    gpu: float = 0.0  # GPUs per trial; fractions pack several trials on one GPU
    memory_mb: float | None = None  # a trial's memory: reserved in Ray and a hard limit on its process
    # Retries of a failed trial from its last checkpoint (a lost node, a killed worker); default: 2 on a cluster,
    # 0 on the Ray started in process, which loses no node and where a failing trial would only fail again.
    max_failures: int | None = None

    def check(self) -> None:
        _at_least("resources.cpu", self.cpu, 0.0)
        _at_least("resources.gpu", self.gpu, 0.0)
        if self.max_failures is not None:
            _at_least("resources.max_failures", self.max_failures, 0)
        if self.memory_mb is not None:
            _at_least("resources.memory_mb", self.memory_mb, MIN_TRIAL_MEMORY_MB)
        if self.cpu == 0 and self.gpu == 0:
            raise ConfigError("resources.cpu", "a trial needs a CPU or a GPU; set resources.cpu to 1")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ConfigError("resources.gpu", f"above 1 it must be a whole number, got {self.gpu!r}")


@dataclass
class TrackingConfig:
    enabled: bool = True  # false: no MLflow at all (no runs, no model logged); for benchmarks and quick tries
    uri: str = "sqlite:///mlflow.db"  # MLflow tracking URI: sqlite:///file.db, http://host:5000, ...
    experiment: str | None = None  # MLflow experiment; default: the config's name
    checkpoints: Literal["none", "best", "top_k", "all"] = "best"  # trial checkpoints copied to MLflow
    top_k: int = 3  # with checkpoints: top_k, the best checkpoint of this many best trials
    register_as: str | None = None  # register the winner in the model registry under this name
    report: bool = True  # log the sweep report (HTML + PNGs) to the parent run when the sweep ends
    flush_timeout_s: float = 120.0  # at the end, wait this long for a down server, then spill to storage

    def check(self) -> None:
        if not self.uri:
            raise ConfigError("tracking.uri", "must not be empty; use sqlite:///mlflow.db or http://HOST:5000")
        _at_least("tracking.top_k", self.top_k, 1)
        _at_least("tracking.flush_timeout_s", self.flush_timeout_s, 0.0)
        if self.register_as is not None and not self.register_as.strip():
            raise ConfigError("tracking.register_as", "must be a model name such as co2-forecaster, or null")
        if self.register_as is not None and any(c in self.register_as for c in "/:"):
            raise ConfigError(
                "tracking.register_as",
                f"MLflow model names cannot hold '/' or ':', got {self.register_as!r}; use e.g. co2-forecaster",
            )


@dataclass
class StorageConfig:
    path: str = "lstm-ray-results"  # where Ray Tune keeps results and checkpoints (local dir, NFS, s3://)
    keep_checkpoints: int | None = 5  # per trial: the best N by search.metric and the latest; null: all
    tensorboard: bool = False  # also write each trial's results as TensorBoard event files (MLflow has them all)

    def check(self) -> None:
        if not self.path:
            raise ConfigError("storage.path", "must not be empty; use lstm-ray-results or s3://bucket/prefix")
        if self.keep_checkpoints is not None:
            _at_least("storage.keep_checkpoints", self.keep_checkpoints, 1)


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
PREPARED_KEYS = ("data.scaling", "data.missing", "data.categorical_encoding")  # each choice prepared once
SECTIONS = ("data", "model", "train", "search", "resources", "tracking", "storage")
MAX_NAME = 200  # a folder name (with the timestamp appended) must stay under the usual 255-byte limit


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply `key=value` overrides and validate everything."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), "is a folder; pass the path to an experiment .yaml file")
    if not path.is_file():
        raise ConfigError(str(path), "config file not found; pass the path to an experiment .yaml file")
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), f"must hold a mapping of sections (name, data, model, ...), got {raw!r:.80}")
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("name") in (None, ""):  # absent or empty; `name: 0` is an error, not the file name
        raw["name"] = path.stem
    return parse_config(raw)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader (plain data only: no tags that build Python objects) that also refuses a key given
    twice in one mapping, which YAML would otherwise settle silently by keeping the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> Any:
    """The plain data in the YAML file `path`. Raises ConfigError, keyed by the path, for unreadable text or
    invalid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), f"is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise ConfigError(str(path), f"cannot be read: {err.strerror or err}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or ""
        if "constructor for the tag" in problem:
            problem += "; only plain data is read (no Python objects), remove the tag"
        raise ConfigError(str(path), f"is not valid YAML{where}: {_one_line(problem)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML: {_one_line(err)}") from None
    except RecursionError:
        raise ConfigError(str(path), "nests too deeply to be an experiment file") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, lists, mappings)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}; e.g. --set train.max_epochs=3")
    if not all(part.strip() for part in key.split(".")):
        raise ConfigError("--set", f"key {key!r} has an empty part; write dotted keys such as train.max_epochs")
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
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
    _check_name(cfg.name)
    _check_values(cfg)
    _check_search(cfg)
    return cfg


def _check_name(name: str) -> None:
    """The name becomes a folder under storage.path (`<name>-<timestamp>`): it must be one plain path part."""
    if not name.strip():
        raise ConfigError("name", "is required; give the sweep a short name such as co2-lstm")
    if name in (".", "..") or "/" in name or "\\" in name or not name.isprintable() or len(name) > MAX_NAME:
        raise ConfigError(
            "name",
            f"{name!r} names the results folder, so it must be one plain name of at most {MAX_NAME} characters "
            "without '/', '\\' or control characters; use e.g. co2-lstm",
        )


def dotted_keys(config: dict[str, Any]) -> dict[str, Any]:
    """A config as plain data (`ExperimentConfig.to_dict()`) keyed `section.key`, one level deep, so lists and the
    search space stay whole values; top-level values such as `name` keep their key.

    >>> dotted_keys({"name": "co2", "train": {"lr": 0.01, "max_epochs": 20}})
    {'name': 'co2', 'train.lr': 0.01, 'train.max_epochs': 20}
    """
    flat: dict[str, Any] = {}
    for section, values in config.items():
        if isinstance(values, dict):
            flat |= {f"{section}.{key}": value for key, value in values.items()}
        else:
            flat[section] = values
    return flat


def apply_params(cfg: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """A copy of `cfg` with dotted-path values (one trial's hyperparameters) set.

    Raises ConfigError when the combination is invalid (e.g. model.proj_size >= model.hidden_size). The search
    space is not checked again: it was checked against the base config, and each of its values checked
    against this trial's other values would fail a valid trial.
    """
    raw = cfg.to_dict()
    for path, value in params.items():
        section, _, key = path.partition(".")
        raw[section][key] = value.item() if hasattr(value, "item") else value
    trial = _build(ExperimentConfig, raw, "")
    _check_values(trial)
    return trial


def _check_values(cfg: ExperimentConfig) -> None:
    """Every section's values, and the rules that span sections."""
    for section in SECTIONS:
        getattr(cfg, section).check()
    if cfg.train.tbptt and cfg.model.bidirectional:
        raise ConfigError(
            "train.tbptt",
            "cannot truncate a bidirectional model, whose backward pass reads the "
            "future; set train.tbptt: 0 or model.bidirectional: false",
        )


MODEL_BASED = ("hyperopt", "optuna", "bayesopt")  # searchers that learn from finished trials
# What PBT may change in a running trial: values the restored checkpoint does not fix (the network's shape,
# the data windows and the optimiser type are fixed once training starts).
PBT_MUTABLE = (
    "train.lr",
    "train.momentum",
    "train.weight_decay",
    "train.l1",
    "train.l2",
    "train.grad_clip",
    "train.batch_size",
    "model.dropout",
    "model.input_dropout",
    "model.recurrent_dropout",
)


def _check_search(cfg: ExperimentConfig) -> None:
    search = cfg.search
    space = {path: parse_distribution(f"search.space.{path}", spec) for path, spec in search.space.items()}
    if search.algorithm == "grid" and not space:
        raise ConfigError("search.space", "grid search needs at least one dimension; add e.g. model.hidden_size")
    for path, dist in space.items():
        _check_dimension(cfg, path, dist)
        _check_conditions(cfg, path, dist, space)
    for i, point in enumerate(search.points_to_evaluate):
        _check_point(cfg, f"search.points_to_evaluate[{i}]", point, space)
    _check_metric(cfg)
    _check_scheduler(cfg, space)
    _check_budgets(cfg)
    if search.warm_start and search.algorithm not in MODEL_BASED:
        raise ConfigError(
            "search.warm_start",
            f"{search.algorithm} search does not learn from results; use {', '.join(MODEL_BASED)} or drop it",
        )
    for i, name in enumerate(search.warm_start):
        if not name.strip():
            raise ConfigError(f"search.warm_start[{i}]", "must name an MLflow experiment or a sweep's parent run id")


def _check_dimension(cfg: ExperimentConfig, path: str, dist: Distribution) -> None:
    key, algorithm = f"search.space.{path}", cfg.search.algorithm
    _check_search_path(cfg, key, path)
    if algorithm in MODEL_BASED and dist.kind == "grid":
        raise ConfigError(
            key, f"grid dimensions cannot be mixed with {algorithm}; use {{choice: [...]}} or search.algorithm: grid"
        )
    if algorithm == "grid" and not dist.is_finite:
        raise ConfigError(key, f"grid search needs a finite set of values, got {dist.kind}; use {{grid: [...]}}")
    if path in (*WINDOW_KEYS, *PREPARED_KEYS) and not dist.is_finite:
        raise ConfigError(
            key,
            f"{path} must be searched over a finite set so windows are built once per value; use {{choice: [...]}}",
        )
    for value in dist.representative_values():
        _check_value(cfg, key, path, value)


def _check_conditions(cfg: ExperimentConfig, path: str, dist: Distribution, space: dict[str, Distribution]) -> None:
    key = f"search.space.{path}.when"
    if dist.when and (cfg.search.algorithm == "grid" or any(d.kind == "grid" for d in space.values())):
        raise ConfigError(key, "a grid cannot skip combinations; use search.algorithm random, hyperopt or optuna")
    searched = [parent for parent, _ in dist.when if parent in space]
    if len(searched) > 1:
        raise ConfigError(key, f"depends on {' and '.join(searched)}; a condition may name one searched dimension")
    for parent, values in dist.when:
        where = f"{key}.{parent}"
        if parent == path:
            raise ConfigError(where, "a dimension cannot depend on itself")
        section, _, name = parent.partition(".")
        if section not in SECTIONS or name not in [f.name for f in dataclasses.fields(getattr(cfg, section))]:
            raise ConfigError(where, f"{parent!r} names no config field; use e.g. model.head")
        if parent not in space:
            for value in values:
                _check_value(cfg, where, parent, value)
            continue
        options = space[parent]
        if not options.is_finite or options.when:
            raise ConfigError(where, f"{parent} must be an unconditional {{choice: [...]}} to be depended on")
        for value in values:
            if value not in options.args:
                raise ConfigError(where, f"{value!r} is not one of the searched values {list(options.args)}")


def _check_point(cfg: ExperimentConfig, key: str, point: dict[str, Any], space: dict[str, Distribution]) -> None:
    algorithm = cfg.search.algorithm
    if algorithm == "grid":
        raise ConfigError(key, "grid search tries every combination already; drop points_to_evaluate or use random")
    for path, value in point.items():
        if path not in space:
            raise ConfigError(f"{key}.{path}", "is not in search.space; add it there or drop it here")
        _check_value(cfg, f"{key}.{path}", path, value)
        if not space[path].contains(value):
            dist = space[path]
            raise ConfigError(f"{key}.{path}", f"{value!r} lies outside the searched {dist.kind} {list(dist.args)}")
        if not space[path].is_active(_with_base(cfg, space, point)):
            raise ConfigError(f"{key}.{path}", "is inactive for this point (see its `when`); drop it here")
    if algorithm in MODEL_BASED or any(dist.when for dist in space.values()):  # these search a tree of values
        for path, dist in space.items():
            if path not in point and dist.is_active(_with_base(cfg, space, point)):
                raise ConfigError(key, f"misses {path}; {algorithm} needs every searched value of a point")


def _with_base(cfg: ExperimentConfig, space: dict[str, Distribution], point: dict[str, Any]) -> dict[str, Any]:
    """The values conditions are decided on: the point's, then the base config's for paths not searched."""
    raw = cfg.to_dict()
    paths = {parent for dist in space.values() for parent, _ in dist.when}
    return {p: raw[p.split(".")[0]][p.split(".")[1]] for p in paths if p not in space} | point


def _check_scheduler(cfg: ExperimentConfig, space: dict[str, Distribution]) -> None:
    search = cfg.search
    if search.max_t is not None and search.max_t > cfg.train.max_epochs:
        raise ConfigError("search.max_t", f"must be <= train.max_epochs {cfg.train.max_epochs}, got {search.max_t}")
    if search.brackets > 1 and search.scheduler != "asha":
        raise ConfigError("search.brackets", f"only asha has brackets, the scheduler is {search.scheduler}; drop it")
    if search.scheduler != "pbt":
        return
    if search.algorithm in MODEL_BASED:
        raise ConfigError(
            "search.scheduler",
            f"pbt evolves trials by copying and perturbing them, which {search.algorithm} cannot model; "
            "use search.algorithm: random",
        )
    mutable = [path for path in space if path in PBT_MUTABLE]
    if not mutable:
        raise ConfigError(
            "search.space", f"pbt needs a dimension it can change in a running trial: one of {', '.join(PBT_MUTABLE)}"
        )
    for path in mutable:
        if space[path].when:
            raise ConfigError(f"search.space.{path}.when", "pbt cannot switch a dimension on and off; drop the when")
    if search.perturbation_interval >= cfg.train.max_epochs:
        raise ConfigError(
            "search.perturbation_interval",
            f"must be below train.max_epochs {cfg.train.max_epochs} or pbt never acts, "
            f"got {search.perturbation_interval}",
        )


def _check_budgets(cfg: ExperimentConfig) -> None:
    valid = TASK_METRICS[cfg.data.task]
    for metric, target in cfg.search.stop.items():
        key = f"search.stop.{metric}"
        if metric not in valid:
            raise ConfigError(key, f"{cfg.data.task} trials report {', '.join(valid)}{_suggest(metric, list(valid))}")
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
            raise ConfigError(key, f"must be a finite number, got {target!r}")


def _check_metric(cfg: ExperimentConfig) -> None:
    metric, mode, task = cfg.search.metric, cfg.search.mode, cfg.data.task
    valid = TASK_METRICS[task]
    if metric not in valid:
        raise ConfigError(
            "search.metric", f"{task} trials report {', '.join(valid)}; got {metric!r}{_suggest(metric, list(valid))}"
        )
    if mode != valid[metric]:
        best = "lower" if valid[metric] == "min" else "higher"
        raise ConfigError("search.mode", f"{metric} is better {best}; set search.mode: {valid[metric]}")


def _check_search_path(cfg: ExperimentConfig, key: str, path: str) -> None:
    section, _, name = path.partition(".")
    tunable = [s for s in SECTIONS if s not in ("search", "tracking", "storage", "resources")]
    if section not in tunable or not name:
        raise ConfigError(key, f"must start with one of {', '.join(tunable)} (e.g. model.hidden_size)")
    fields = [f.name for f in dataclasses.fields(getattr(cfg, section))]
    if name not in fields:
        raise ConfigError(key, f"{path!r} names no config field{_suggest(name, fields)}")
    if section == "data" and path not in (*WINDOW_KEYS, *PREPARED_KEYS):
        raise ConfigError(
            key,
            f"{path} is fixed for the whole sweep (the data is prepared once); only "
            f"{', '.join(WINDOW_KEYS + PREPARED_KEYS)} can be searched: run one sweep per {path} value",
        )


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
        raise ConfigError(prefix, f"{'must' if prefix else 'the config file must'} be a mapping, got {raw!r}")
    hints, names = _fields(cls)
    kwargs = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(path, f"unknown key{_suggest(str(key), names)}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], list[str]]:
    """A config dataclass's field types and names; resolving the (string) annotations is most of a build's time."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, path)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        options = [option for option in options if option is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(err)
        deeper = [err for err in errors if err.key != path]  # the value had an option's shape, an item was wrong
        if deeper or len(errors) == 1:
            raise (deeper or errors)[0]
        raise ConfigError(path, f"expected {' or '.join(_expected(o) for o in options)}, got {value!r}")
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
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_WHOLE:
                raise ConfigError(path, f"{value!r} is too large; a whole number here stays within +-{MAX_WHOLE:.2g}")
            return value
        raise ConfigError(path, f"expected a whole number, got {value!r}{_quoted_number_hint(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(path, f"expected a finite number, got {value!r}{_quoted_number_hint(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected text, got {value!r}")
    raise TypeError(f"unsupported config type {hint!r} at {path}")


MAX_WHOLE = 2**63 - 1  # numpy's int64: larger counts would overflow window and fold arithmetic


def _expected(hint: Any) -> str:
    """What a value of type `hint` looks like, in the user's words."""
    origin = typing.get_origin(hint)
    if origin is list:
        return f"a list of {_expected(typing.get_args(hint)[0]).removeprefix('a ')}"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return {int: "a whole number", float: "a finite number", str: "text", bool: "true or false"}.get(hint, str(hint))


def _quoted_number_hint(value: Any) -> str:
    """YAML 1.1 reads 1e-3 (no dot) as text: say so when text looks like a number."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return "; write numbers without quotes and with a dot before an exponent (1.0e-3, not 1e-3)"


def _check_unique(key: str, values: list[Any]) -> None:
    seen = []
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{key}[{i}]", f"{value!r} is listed twice; remove the repeat")
        seen.append(value)


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


def _duration(key: str, text: str) -> float:
    """Seconds in "90", "90s", "30m" or "2h"."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ConfigError(key, f"expected seconds or a duration such as 90s, 30m, 2h; got {text!r}")
    return seconds


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
