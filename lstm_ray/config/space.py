"""The search-space DSL of experiment files, parsed without Ray.

    search:
      space:
        model.hidden_size: {choice: [16, 32, 64]}
        train.lr: {loguniform: [1.0e-4, 1.0e-2]}
        model.num_layers: {randint: [1, 4]}      # 1, 2 or 3: the upper bound is exclusive, as in Ray Tune
        model.dropout: {quniform: [0.0, 0.5, 0.1], when: {model.num_layers: [2, 3]}}
        data.lookback: {grid: [24, 52]}          # only with search.algorithm: grid or random

`when` makes a dimension conditional: it is searched only while every named config path holds one of the
listed values, and a trial where it is inactive keeps the base config's value (and does not log it). A condition
names either a searched `choice`/`grid` dimension that is itself unconditional (HyperOpt then searches a tree,
which is what the "tree" in TPE is for) or a fixed config value such as `data.task`, decided before the sweep.
`search/searchers.py` turns a space into each searcher's own form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lstm_ray.errors import ConfigError, shown

KINDS = ("choice", "grid", "uniform", "loguniform", "quniform", "randint")
CONDITION = "when"


@dataclass(frozen=True)
class Distribution:
    kind: str
    args: tuple[Any, ...]
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (config path, values it must hold) pairs, all required

    @property
    def is_finite(self) -> bool:
        return self.kind in ("choice", "grid")

    @property
    def is_continuous(self) -> bool:
        return self.kind in ("uniform", "loguniform")

    def representative_values(self) -> list[Any]:
        """Values that must all be valid for the config field: every option, or both ends of a range."""
        if self.is_finite:
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]

    def rounded_ends(self) -> list[tuple[str, float]]:
        """("low", value) and ("high", value): the ends a quniform range reaches once its draws are rounded as
        HyperOpt and Ray Tune round them, round(x / q) * q (a multiple of q, which may lie outside [low, high]);
        none for other kinds."""
        if self.kind != "quniform":
            return []
        low, high, q = self.args
        return [("low", round(low / q) * q), ("high", round(high / q) * q)]

    def is_active(self, values: Mapping[str, Any]) -> bool:
        """Whether this dimension is searched given the other values of a trial (or of the base config)."""
        return all(path in values and values[path] in allowed for path, allowed in self.when)

    def contains(self, value: Any) -> bool:
        """Whether `value` is one this dimension can propose (used to vet points from earlier sweeps)."""
        if self.is_finite:
            return value in self.args
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        low, high = self.args[0], self.args[1]
        if self.kind == "randint":
            return float(value).is_integer() and low <= value < high
        return low <= value <= high


def parse_distribution(key: str, spec: Any) -> Distribution:
    """Parse `{kind: args}` with an optional `when: {path: value or [values]}`; `key` names the entry in errors."""
    if isinstance(spec, dict) and CONDITION in spec:
        spec = dict(spec)
        when = _parse_when(f"{key}.{CONDITION}", spec.pop(CONDITION))
    else:
        when = ()
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(key, f"expected one distribution such as {{choice: [16, 32]}}, got {shown(spec)}")
    ((kind, args),) = spec.items()
    if kind not in KINDS:
        raise ConfigError(key, f"unknown distribution {shown(kind)}; use one of {', '.join(KINDS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(key, f"{kind} needs a non-empty list, e.g. {{{kind}: {_example(kind)}}}, got {shown(args)}")
    if kind in ("choice", "grid"):
        return Distribution(kind, tuple(args), when)
    _check_numeric(key, kind, args)
    low, high = args[0], args[1]
    if low > high or (low == high and kind == "randint"):
        raise ConfigError(key, f"{kind} low {low!r} must be below high {high!r}; swap them")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(key, f"loguniform needs low > 0, got {low!r}; use e.g. [1.0e-4, 1.0e-2]")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(key, f"randint takes whole numbers, got {shown(args)}")
    if kind == "quniform" and args[2] <= 0:
        raise ConfigError(key, f"quniform step q must be > 0, got {args[2]!r}")
    return Distribution(kind, tuple(args), when)


def resolve_fixed_conditions(space: dict[str, Distribution], base: Mapping[str, Any]) -> dict[str, Distribution]:
    """The space with conditions on non-searched paths decided against the base config's values `base`.

    Dimensions whose fixed condition fails are dropped (never searched); conditions that hold are removed, so
    every condition left names a searched dimension.
    """
    resolved = {}
    for path, dist in space.items():
        fixed = [(p, allowed) for p, allowed in dist.when if p not in space]
        if all(base.get(p) in allowed for p, allowed in fixed):
            searched = tuple((p, allowed) for p, allowed in dist.when if p in space)
            resolved[path] = Distribution(dist.kind, dist.args, searched)
    return resolved


def active_params(space: dict[str, Distribution], params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `params` whose dimensions are active (conditions decided on `params` themselves)."""
    return {path: value for path, value in params.items() if path not in space or space[path].is_active(params)}


def same_value(a: Any, b: Any) -> bool:
    """Whether a condition's value `a` names the option `b`: equal and both booleans or both not (Python's
    True == 1 would let `when: {model.num_layers: true}` match the layer count 1)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _parse_when(key: str, when: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(when, dict) or not when:
        raise ConfigError(
            key, f"expected a mapping of config paths to values, e.g. {{model.cell: lstm}}, got {shown(when)}"
        )
    pairs = []
    for path, values in when.items():
        if not isinstance(path, str) or "." not in path:
            raise ConfigError(key, f"{shown(path)} must be a dotted config path such as model.cell")
        options = tuple(values) if isinstance(values, list) else (values,)
        if not options:
            raise ConfigError(f"{key}.{path}", "needs at least one value")
        pairs.append((path, options))
    return tuple(pairs)


def _check_numeric(key: str, kind: str, args: list[Any]) -> None:
    expected = 3 if kind == "quniform" else 2
    if len(args) != expected:
        raise ConfigError(key, f"{kind} takes {expected} numbers {_example(kind)}, got {shown(args)}")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(key, f"{kind} takes finite numbers {_example(kind)}, got {shown(value)}")


def _example(kind: str) -> str:
    return {
        "choice": "[16, 32, 64]",
        "grid": "[16, 32, 64]",
        "uniform": "[low, high]",
        "loguniform": "[low, high]",
        "quniform": "[low, high, q]",
        "randint": "[low, high_exclusive]",
    }[kind]
