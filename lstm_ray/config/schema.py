"""The experiment file's schema: one dataclass per section, every key with its default and a comment saying
what it does, and the constants that say which keys may be searched and how.

    cfg = ExperimentConfig(name="co2", data=DataConfig(source="builtin:co2", target="co2"))
    cfg.model.check()  # each section checks its own values; rules.py checks those that span sections

Build configs from files with `lstm_ray.config.load_config` or `parse_config`, which also run the checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lstm_ray.config.budget import BudgetConfig, PricesConfig, check_budget
from lstm_ray.config.resources import ResourcesConfig
from lstm_ray.config.space import Distribution, parse_distribution
from lstm_ray.config.strict import at_least, check_unique, in_range, parse_duration, suggest
from lstm_ray.errors import ConfigError


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
    window_norm: Literal["none", "last", "mean", "standard"] = "standard"  # forecast: each window relative to itself
    target_transform: Literal["none", "diff", "log", "log_diff"] = "none"  # forecast: predict changes / logs
    season_length: int = 0  # forecast: steps per season (seasonal baseline, MASE); 0: from the time column
    validation: Literal["holdout", "cv"] = "holdout"  # cv: trials report the mean and spread over folds
    folds: int = 5  # cv folds
    cv_scheme: Literal["expanding", "sliding", "kfold"] | None = None  # default: expanding (forecast), kfold
    seed: int = 0  # seeds the stratified splits and folds of classify

    def check(self) -> None:
        if not self.source:
            raise ConfigError("data.source", "is required; use builtin:co2 or a path to a .parquet/.csv file")
        at_least("data.lookback", self.lookback, 1)
        at_least("data.horizon", self.horizon, 1)
        at_least("data.stride", self.stride, 1)
        in_range("data.val_fraction", self.val_fraction, 0.0, 1.0, high_open=True, low_open=True)
        in_range("data.test_fraction", self.test_fraction, 0.0, 1.0, high_open=True, low_open=True)
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError(
                "data.val_fraction",
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} leaves too little "
                "to train on; keep the sum below 0.9",
            )
        at_least("data.folds", self.folds, 2)
        for key, hint in (("target", "a column name"), ("features", "null (the target alone)")):
            if getattr(self, key) == []:
                raise ConfigError(f"data.{key}", f"is an empty list; give {hint}")
        for key in ("target", "features", "categorical", "calendar", "lags", "differences"):
            check_unique(f"data.{key}", self.targets if key == "target" else getattr(self, key) or [])
        self._check_task_keys()
        at_least("data.season_length", self.season_length, 0)
        for key, steps in (("data.lags", self.lags), ("data.differences", self.differences)):
            for step in steps:
                at_least(key, step, 1)

    def _check_task_keys(self) -> None:
        if self.task == "classify":
            if len(self.targets) > 1:
                raise ConfigError("data.target", f"classify takes one label column, got {self.target!r}")
            for key in ("lags", "differences", "season_length"):
                if getattr(self, key):
                    raise ConfigError(f"data.{key}", "applies to forecast only; remove it for task classify")
            if self.target_transform != "none":
                raise ConfigError("data.target_transform", "applies to forecast only; remove it for task classify")
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
    highway: int = 0  # forecast: add a linear autoregression on the last N target values to the output; 0: off
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
        at_least("model.hidden_size", self.hidden_size, 1)
        at_least("model.num_layers", self.num_layers, 1)
        at_least("model.proj_size", self.proj_size, 0)
        at_least("model.highway", self.highway, 0)
        if self.proj_size >= self.hidden_size:
            raise ConfigError(
                "model.proj_size", f"must be below hidden_size {self.hidden_size}, got {self.proj_size}; or 0 for off"
            )
        for key in ("input_dropout", "dropout", "recurrent_dropout"):
            in_range(f"model.{key}", getattr(self, key), 0.0, 1.0, high_open=True)
        at_least("model.embedding_dim", self.embedding_dim, 0)
        at_least("model.vocab_size", self.vocab_size, 0)
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
                    key, f"{part!r} is not a part of this model{suggest(part, parts)}; parts: {', '.join(parts)}"
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
        at_least("train.max_epochs", self.max_epochs, 1)
        at_least("train.batch_size", self.batch_size, 1)
        in_range("train.lr", self.lr, 0.0, 10.0, low_open=True)
        in_range("train.momentum", self.momentum, 0.0, 1.0, high_open=True)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("train.nesterov", "needs optimizer sgd with momentum > 0; set train.momentum, e.g. 0.9")
        for key in ("weight_decay", "l1", "l2", "grad_clip", "min_delta"):
            at_least(f"train.{key}", getattr(self, key), 0.0)
        for key in ("warmup_epochs", "patience", "tbptt"):
            at_least(f"train.{key}", getattr(self, key), 0)
        at_least("train.step_epochs", self.step_epochs, 1)
        at_least("train.plateau_patience", self.plateau_patience, 0)
        in_range("train.lr_decay", self.lr_decay, 0.0, 1.0, low_open=True, high_open=True)
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
        at_least("search.reevaluate.top_k", self.top_k, 1)
        at_least("search.reevaluate.seeds", self.seeds, 1)


@dataclass
class SearchConfig:
    algorithm: Literal["hyperopt", "optuna", "nsga2", "bayesopt", "random", "grid"] = "hyperopt"  # who proposes
    scheduler: Literal["asha", "hyperband", "median", "pbt", "fifo"] = "asha"  # who stops (or evolves) trials
    metric: str = "val_rmse"  # what the search optimises (a validation metric)
    mode: Literal["min", "max"] = "min"
    objectives: list[dict[str, str]] = field(default_factory=list)  # [{metric: val_rmse, mode: min}, ...]: a front
    pick: str | None = None  # "lowest val_rmse where latency_ms < 5": the front member that wins (config/pick.py)
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
    budget: BudgetConfig | None = None  # {gpu_hours: 20, usd: 150}: stop the sweep once it has spent this
    prices: PricesConfig | None = None  # {gpu_hour: 2.5, cpu_hour: 0.05}: USD per GPU / CPU core held an hour
    space: dict[str, Any] = field(default_factory=dict)  # dotted config path -> distribution

    def check(self) -> None:
        at_least("search.num_samples", self.num_samples, 1)
        for key in ("max_trials", "max_concurrent", "max_t"):
            if getattr(self, key) is not None:
                at_least(f"search.{key}", getattr(self, key), 1)
        at_least("search.grace_period", self.grace_period, 1)
        at_least("search.reduction_factor", self.reduction_factor, 2)
        at_least("search.brackets", self.brackets, 1)
        at_least("search.perturbation_interval", self.perturbation_interval, 1)
        at_least("search.n_initial_points", self.n_initial_points, 1)
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
        check_budget(self.budget, self.prices)

    @property
    def time_budget_s(self) -> float | None:
        """`time_budget` in seconds (None: no limit)."""
        if self.time_budget is None or isinstance(self.time_budget, float):
            return self.time_budget
        return parse_duration("search.time_budget", self.time_budget)


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
        at_least("tracking.top_k", self.top_k, 1)
        at_least("tracking.flush_timeout_s", self.flush_timeout_s, 0.0)
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
            at_least("storage.keep_checkpoints", self.keep_checkpoints, 1)


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
PREPARED_KEYS = ("data.scaling", "data.missing", "data.categorical_encoding", "data.target_transform")  # each prepared
FRAME_KEYS = ("data.window_norm",)  # searchable over finite sets; the model applies them to each window
SECTIONS = ("data", "model", "train", "search", "resources", "tracking", "storage")
MODEL_BASED = ("hyperopt", "optuna", "nsga2", "bayesopt")  # searchers that learn from finished trials
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
# Every validation metric a task reports and whether it is minimised or maximised, so the config can check
# `search.metric` and `search.mode` before anything runs.
TASK_METRICS: dict[str, dict[str, str]] = {
    "forecast": {f"val_{name}": "min" for name in ("loss", "rmse", "mae", "mase", "mape", "smape")},
    "classify": {"val_loss": "min", "val_accuracy": "max", "val_f1": "max", "val_auc": "max"},
}
