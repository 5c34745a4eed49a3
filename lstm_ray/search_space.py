"""The search-space DSL of experiment files, parsed without Ray.

    search:
      space:
        model.hidden_size: {choice: [16, 32, 64]}
        train.lr: {loguniform: [1.0e-4, 1.0e-2]}
        model.num_layers: {randint: [1, 4]}      # 1, 2 or 3: the upper bound is exclusive, as in Ray Tune
        model.dropout: {quniform: [0.0, 0.5, 0.1]}
        data.lookback: {grid: [24, 52]}          # only with search.algorithm: grid or random

`tuning.to_tune_domain` turns a `Distribution` into a Ray Tune domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lstm_ray.errors import ConfigError

KINDS = ("choice", "grid", "uniform", "loguniform", "quniform", "randint")


@dataclass(frozen=True)
class Distribution:
    kind: str
    args: tuple[Any, ...]

    @property
    def is_finite(self) -> bool:
        return self.kind in ("choice", "grid")

    def representative_values(self) -> list[Any]:
        """Values that must all be valid for the config field: every option, or both ends of a range."""
        if self.is_finite:
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


def parse_distribution(key: str, spec: Any) -> Distribution:
    """Parse `{kind: args}`; `key` (e.g. search.space.train.lr) names the entry in errors."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(key, f"expected one distribution such as {{choice: [16, 32]}}, got {spec!r}")
    ((kind, args),) = spec.items()
    if kind not in KINDS:
        raise ConfigError(key, f"unknown distribution {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(key, f"{kind} needs a non-empty list, e.g. {{{kind}: {_example(kind)}}}, got {args!r}")
    if kind in ("choice", "grid"):
        return Distribution(kind, tuple(args))
    _check_numeric(key, kind, args)
    low, high = args[0], args[1]
    if low > high or (low == high and kind == "randint"):
        raise ConfigError(key, f"{kind} low {low!r} must be below high {high!r}; swap them")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(key, f"loguniform needs low > 0, got {low!r}; use e.g. [1.0e-4, 1.0e-2]")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(key, f"randint takes whole numbers, got {args!r}")
    if kind == "quniform" and args[2] <= 0:
        raise ConfigError(key, f"quniform step q must be > 0, got {args[2]!r}")
    return Distribution(kind, tuple(args))


def _check_numeric(key: str, kind: str, args: list[Any]) -> None:
    expected = 3 if kind == "quniform" else 2
    if len(args) != expected:
        raise ConfigError(key, f"{kind} takes {expected} numbers {_example(kind)}, got {args!r}")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(key, f"{kind} takes finite numbers {_example(kind)}, got {value!r}")


def _example(kind: str) -> str:
    return {
        "choice": "[16, 32, 64]",
        "grid": "[16, 32, 64]",
        "uniform": "[low, high]",
        "loguniform": "[low, high]",
        "quniform": "[low, high, q]",
        "randint": "[low, high_exclusive]",
    }[kind]
