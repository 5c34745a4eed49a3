"""search.objectives: a sweep that looks for a Pareto front (error against size) instead of one winner.

    search: {objectives: [{metric: val_rmse, mode: min}, {metric: model_parameters, mode: min}]}

Each objective is a metric every trial reports: a validation metric of the task, `model_parameters` or
`latency_ms`.
`search.metric` must be one of them: it still picks each trial's checkpoint and the sweep's winner.
"""

from __future__ import annotations

from lstm_ray.config.schema import TASK_METRICS, ExperimentConfig
from lstm_ray.config.strict import suggest
from lstm_ray.errors import ConfigError, shown

# Objectives a trial measures once and reports with every epoch, besides its validation metrics: its trainable
# parameters, and the milliseconds one batch of train.batch_size windows takes through it on its own device.
SIZE_OBJECTIVES = {"model_parameters": "min", "latency_ms": "min"}
MULTI_OBJECTIVE = {"algorithm": ("random", "grid", "optuna", "nsga2"), "scheduler": ("asha", "fifo")}


def check_objectives(cfg: ExperimentConfig) -> None:
    """search.objectives against the task, search.metric, the searcher and the scheduler (see docs/search.md)."""
    search = cfg.search
    if not search.objectives:
        return
    valid = TASK_METRICS[cfg.data.task] | SIZE_OBJECTIVES
    if len(search.objectives) < 2:
        raise ConfigError("search.objectives", "needs two or more objectives; for one, set search.metric and drop it")
    for i, objective in enumerate(search.objectives):
        key, metric = f"search.objectives[{i}]", objective.get("metric")
        if set(objective) != {"metric", "mode"}:
            raise ConfigError(key, f"must be {{metric: ..., mode: min|max}}, got {shown(objective)}")
        if metric not in valid:
            raise ConfigError(
                f"{key}.metric", f"must be one of {', '.join(valid)}; got {metric!r}{suggest(metric, list(valid))}"
            )
        if objective["mode"] != valid[metric]:
            raise ConfigError(
                f"{key}.mode",
                f"{metric} is better {'lower' if valid[metric] == 'min' else 'higher'}; set mode: {valid[metric]}",
            )
    metrics = [objective["metric"] for objective in search.objectives]
    if len(set(metrics)) < len(metrics):
        raise ConfigError("search.objectives", f"names a metric twice: {', '.join(metrics)}")
    if search.metric not in metrics:
        raise ConfigError(
            "search.metric",
            f"picks checkpoints and the winner, so it must be one of search.objectives "
            f"({', '.join(metrics)}); got {search.metric!r}",
        )
    if search.warm_start:
        raise ConfigError("search.warm_start", "earlier sweeps are not yet told to a multi-objective searcher; drop it")
    for knob, allowed in MULTI_OBJECTIVE.items():
        if getattr(search, knob) not in allowed:
            raise ConfigError(
                f"search.{knob}",
                f"{getattr(search, knob)} ranks one metric; with search.objectives use {' or '.join(allowed)}",
            )


def objective_pairs(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(metric, mode) of each objective; without objectives, search.metric's alone."""
    search = cfg.search
    return [(o["metric"], o["mode"]) for o in search.objectives] or [(search.metric, search.mode)]
