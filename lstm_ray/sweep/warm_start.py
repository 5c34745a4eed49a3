"""Warm start: earlier sweeps' finished trials, told to a model-based searcher before it proposes anything.

    search:
      warm_start: [quickstart, 3f2a9c...]    # MLflow experiment names (every sweep in them) or parent run ids

An earlier trial is told only when it measured what today's trial would measure:

- every setting that shapes a trial's result and is fixed today (each `data.*`, `model.*` and `train.*` key but
  those in NOT_RESULT_SHAPING, with `data.*` as the data resolved it) equals today's, read from the earlier
  sweep's parent-run params under the trial's own (a key the earlier sweep did not record counts as its
  default: lstm-ray adds keys whose default keeps the old behaviour);
- its values of today's searched keys lie in today's `search.space`;
- it completed or was stopped early (failed trials are not read) and measured `search.metric`.

Its fidelity is the epochs it trained against today's `train.max_epochs`: a trial that trained fewer (the earlier
sweep's max_epochs was lower, or a scheduler stopped it) is told as a low-fidelity point, as `search/fidelity.py`
ranks a trial ASHA stopped: every searcher a warm start accepts (the model-based ones) ranks by fidelity, so
none has to skip it. A trial that trained more counts with its best of today's first max_epochs epochs; one that
ended by its own early stopping (`train.patience`, compared above) has full fidelity. Under a schedule that
spans train.max_epochs (cosine, onecycle) a different max_epochs changes every epoch's learning rate: skipped.

`lstm-ray tune` prints what was used and why the rest was not, one line:
    warm start: 12 earlier trials used (4 at low fidelity), 5 skipped: model.cell was gru, is lstm (5)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig
from lstm_ray.config.space import Distribution, active_params
from lstm_ray.data.dataset import PreparedData, prepare_sweep_data
from lstm_ray.search.searchers import KnownPoint, search_space
from lstm_ray.tracking.outbox import param_value
from lstm_ray.tracking.runs import sweep_trials
from lstm_ray.tracking.sweep import sweep_params

log = logging.getLogger(__name__)

# Settings that do not change what a trial measures: an earlier trial is comparable whatever they were. A section
# name covers each of its keys. Everything else under data, model and train is compared.
NOT_RESULT_SHAPING = {
    "name": "a label",
    "search": "which configurations are tried and how many; a scheduler's stop shows in the trial's epochs",
    "resources": "where and on how many processes a trial runs; data-parallel workers share one global batch",
    "tracking": "where results are written",
    "storage": "where checkpoints are written",
    "train.seed": "one random draw of the same experiment: searchers model noise (re-evaluation varies it)",
    "train.max_epochs": "the fidelity, compared on its own (`fidelity`)",
}
SPANS_MAX_EPOCHS = ("cosine", "onecycle")  # train.schedule values whose lr at each epoch depends on max_epochs
SHOWN_CHARS = 40  # a value longer than this is cut in the log line


def shapes_result(key: str) -> bool:
    """Whether the dotted config `key` changes what a trial measures (NOT_RESULT_SHAPING says why not)."""
    return key not in NOT_RESULT_SHAPING and key.split(".", 1)[0] not in NOT_RESULT_SHAPING


@dataclass
class WarmStart:
    """What `search.warm_start` gave: the points told to the searcher and, per reason, the trials not told."""

    points: list[KnownPoint] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    low_fidelity: int = 0  # points trained for fewer epochs than today's train.max_epochs

    def line(self) -> str:
        """One line for the log and the CLI: counts used, and skipped per reason, most frequent first."""
        used = f"warm start: {len(self.points)} earlier trials used"
        used += f" ({self.low_fidelity} at low fidelity)" if self.low_fidelity else ""
        if not self.skipped:
            return used
        reasons = ", ".join(f"{reason} ({count})" for reason, count in self.skipped.most_common())
        return f"{used}, {sum(self.skipped.values())} skipped: {reasons}"


def warm_start(cfg: ExperimentConfig, data: PreparedData | None = None) -> WarmStart:
    """Read every sweep `search.warm_start` names (ConfigError for a name MLflow lacks) and sort its trials into
    the points told to the searcher and the skipped. `data` is the sweep's prepared data (prepared here if None):
    the earlier parent run logged `data.*` as its data resolved them, so today's are compared the same way."""
    result = WarmStart()
    if not cfg.search.warm_start:
        return result
    space = search_space(cfg)
    today = fixed_settings(cfg, data or prepare_sweep_data(cfg), space)
    defaults = schema_defaults(cfg)
    for i, name in enumerate(cfg.search.warm_start):
        for trial in sweep_trials(cfg.tracking.uri, name, cfg.search.metric, key=f"search.warm_start[{i}]"):
            point = difference(trial["params"], today, defaults) or known_point(trial, space, cfg)
            if isinstance(point, str):
                result.skipped[point] += 1
            else:
                result.points.append(point)
                result.low_fidelity += point.epochs < cfg.train.max_epochs
    log.info("%s", result.line())
    return result


def warm_start_points(cfg: ExperimentConfig, data: PreparedData | None = None) -> list[KnownPoint]:
    """The points `warm_start` tells the searcher."""
    return warm_start(cfg, data).points


def fixed_settings(cfg: ExperimentConfig, data: PreparedData, space: Mapping[str, Any]) -> dict[str, str]:
    """Today's result-shaping settings that are not searched, as strings the way the parent run logs them."""
    return {p.key: p.value for p in sweep_params(cfg, data) if shapes_result(p.key) and p.key not in space}


def schema_defaults(cfg: ExperimentConfig) -> dict[str, str]:
    """Each data, model and train key's schema default as a param string (for keys an older sweep lacks)."""
    defaults = {}
    for section in ("data", "model", "train"):
        for f in dataclasses.fields(getattr(cfg, section)):
            if f.default is not dataclasses.MISSING:
                defaults[f"{section}.{f.name}"] = param_value(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f"{section}.{f.name}"] = param_value(f.default_factory())
    return defaults


def difference(earlier: Mapping[str, str], today: Mapping[str, str], defaults: Mapping[str, str]) -> str | None:
    """The first result-shaping key whose earlier value differs from today's, in words; None when all agree.
    `earlier` and `today` map dotted keys to param strings; a key absent from `earlier` takes its default."""
    for key in sorted(today):
        if not shapes_result(key):
            continue
        then = earlier.get(key, defaults.get(key))
        if then is None:
            return f"{key} not recorded"
        if then != today[key]:
            return f"{key} was {_short(then)}, is {_short(today[key])}"
    return None


def known_point(trial: dict[str, Any], space: dict[str, Distribution], cfg: ExperimentConfig) -> KnownPoint | str:
    """One earlier trial ({params, history, epochs, outcome}, params as MLflow strings) in today's terms, or the
    reason it cannot be told: a value outside today's space, a schedule that spans another max_epochs, no value."""
    params: dict[str, str] = trial["params"]
    parsed = {path: parse_value(dist, params[path]) for path, dist in space.items() if path in params}
    typed = active_params(space, {path: value for path, value in parsed.items() if value is not None})
    for path, dist in space.items():
        if dist.is_active(typed) and path not in typed and path in params:
            return f"{path}={_short(params[path])} outside today's search.space"
        if dist.is_active(typed) and path not in typed:
            return f"{path} not recorded"
    return fidelity(trial, cfg, typed)


def fidelity(trial: dict[str, Any], cfg: ExperimentConfig, params: dict[str, Any]) -> KnownPoint | str:
    """The trial as a point at today's fidelity (see the module docstring), or why it cannot be one."""
    max_epochs, epochs = cfg.train.max_epochs, int(trial["epochs"])
    then = trial["params"].get("train.max_epochs")
    then_max = int(float(then)) if then is not None else epochs
    if then_max != max_epochs and cfg.train.schedule in SPANS_MAX_EPOCHS:
        return f"train.max_epochs was {then_max}, is {max_epochs} (train.schedule {cfg.train.schedule} spans it)"
    values = [v for v in trial["history"][:max_epochs] if math.isfinite(v)]
    if not values:
        return f"no finite {cfg.search.metric}"
    stopped_itself = trial["outcome"] == outcomes.COMPLETED and epochs < then_max  # train.patience
    best = min(values) if cfg.search.mode == "min" else max(values)
    return KnownPoint(params, best, max_epochs if stopped_itself or epochs >= max_epochs else epochs)


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


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
