"""The experiment file: schema, defaults, `--set` overrides, the checks across sections and the search-space DSL.

    from lstm_ray.config import load_config

    cfg = load_config("configs/quickstart.yaml", overrides=["train.max_epochs=3"])
    cfg.train.max_epochs  # 3: the override wins over the file's 12; every key typed, defaulted and checked

Every user mistake raises `ConfigError` naming the key, the bad value and the fix. Nothing here imports torch
or Ray, so `lstm-ray validate` answers in well under a second.

The modules, each importing only those listed before it: `space` (the search-space DSL), `strict` (the typed
builder and the value checks), `resources` (what a trial holds), `budget` (`search.budget` and `search.prices`),
`schema` (the dataclasses, their defaults and the key tables), `rules` (the checks across sections), `loading`
(YAML, `--set`, `load_config`, `parse_config`, `apply_params`, `dotted_keys`).
"""

from lstm_ray.config.budget import BudgetConfig, PricesConfig
from lstm_ray.config.loading import _StrictLoader as _StrictLoader  # for the test that the YAML loader is safe
from lstm_ray.config.loading import apply_override, apply_params, dotted_keys, load_config, parse_config
from lstm_ray.config.schema import (
    FRAME_KEYS,
    MODEL_BASED,
    PBT_MUTABLE,
    PREPARED_KEYS,
    SECTIONS,
    TASK_METRICS,
    WINDOW_KEYS,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    ReevaluateConfig,
    ResourcesConfig,
    SearchConfig,
    StorageConfig,
    TrackingConfig,
    TrainConfig,
)
from lstm_ray.errors import ConfigError

__all__ = [
    "FRAME_KEYS",
    "MODEL_BASED",
    "PBT_MUTABLE",
    "PREPARED_KEYS",
    "SECTIONS",
    "TASK_METRICS",
    "WINDOW_KEYS",
    "BudgetConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "PricesConfig",
    "ReevaluateConfig",
    "ResourcesConfig",
    "SearchConfig",
    "StorageConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_override",
    "apply_params",
    "dotted_keys",
    "load_config",
    "parse_config",
]
