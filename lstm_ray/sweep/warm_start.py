"""Warm start: earlier sweeps' finished trials, told to a model-based searcher before it proposes anything.

    search:
      warm_start: [quickstart, 3f2a9c...]    # MLflow experiment names (every sweep in them) or parent run ids

A trial is used when it completed or was stopped early (failed trials are skipped), it measured
`search.metric` on the same `data.source`, and its values, read back from the MLflow params, lie in today's
`search.space`. A value searched then but fixed now must equal today's; one fixed then but searched now is
taken from the earlier sweep's config. Each point keeps its fidelity (the epochs it trained), so a trial
that was stopped early counts as one (see `search/fidelity.py`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from lstm_ray.config import ExperimentConfig, dotted_keys
from lstm_ray.config.space import Distribution, active_params
from lstm_ray.search.searchers import KnownPoint, search_space
from lstm_ray.tracking.runs import sweep_trials

log = logging.getLogger(__name__)


def warm_start_points(cfg: ExperimentConfig) -> list[KnownPoint]:
    """The usable trials of every sweep `search.warm_start` names (ConfigError for a name MLflow lacks)."""
    space = search_space(cfg)
    base = dotted_keys(cfg.to_dict())
    points, skipped = [], 0
    for i, name in enumerate(cfg.search.warm_start):
        for trial in sweep_trials(cfg.tracking.uri, name, cfg.search.metric, key=f"search.warm_start[{i}]"):
            point = known_point(trial, space, base, cfg)
            if point is None:
                skipped += 1
            else:
                points.append(point)
    if cfg.search.warm_start:
        log.warning("warm start: %d earlier trials told to the searcher, %d skipped", len(points), skipped)
    return points


def known_point(
    trial: dict[str, Any], space: dict[str, Distribution], base: dict[str, Any], cfg: ExperimentConfig
) -> KnownPoint | None:
    """One earlier trial ({params, history, epochs, outcome}, params as MLflow strings) in today's terms."""
    params: dict[str, str] = trial["params"]
    if params.get("data.source", cfg.data.source) != cfg.data.source:
        return None
    values = [v for v in trial["history"] if math.isfinite(v)]
    if not values:
        return None
    for path, value in base.items():
        if path not in space and path in trial["searched"] and params.get(path) != str(value):
            return None  # searched then, fixed now at another value: not comparable
    typed = {}
    for path, dist in space.items():
        if path not in params:
            continue
        value = parse_value(dist, params[path])
        if value is None:
            return None
        typed[path] = value
    typed = active_params(space, typed)
    if any(path not in typed for path, dist in space.items() if dist.is_active(typed)):
        return None
    best = min(values) if cfg.search.mode == "min" else max(values)
    epochs = cfg.train.max_epochs if trial["outcome"] == "completed" else int(trial["epochs"])
    return KnownPoint(typed, best, epochs)


def parse_value(dist: Distribution, text: str) -> Any:
    """The value MLflow logged as `text` (str(value)), or None when this dimension cannot propose it."""
    if dist.is_finite:
        return next((option for option in dist.args if str(option) == text), None)
    try:
        number = float(text)
    except ValueError:
        return None
    value = int(number) if dist.kind == "randint" and number.is_integer() else number
    return value if dist.contains(value) else None
