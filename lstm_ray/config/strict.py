"""Strict construction of config dataclasses from plain data (a parsed YAML mapping), and the value checks
and parsers the sections share. Every failure is a `ConfigError` that names the dotted key, the bad value
and the fix.

    build(TrainConfig, {"lr": 0.01, "max_epochs": 3}, "train")  # TrainConfig(lr=0.01, max_epochs=3, ...)
    build(TrainConfig, {"max_epoch": 3}, "train")  # ConfigError: train.max_epoch: unknown key; did you mean ...

The builder knows nothing of the experiment schema: it follows each field's type annotation (dataclasses,
`X | None`, `Literal[...]`, `list[X]`, `dict`, int, float, str, bool), refuses unknown keys and never converts
text to numbers.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Literal, Union

from lstm_ray.errors import ConfigError, shown

MAX_WHOLE = 2**63 - 1  # numpy's int64: larger counts would overflow window and fold arithmetic


def build(cls: type, raw: Any, prefix: str) -> Any:
    """An instance of the dataclass `cls` from the mapping `raw`, every value checked against its field's type;
    `prefix` is the dotted key of `raw` in the experiment file ("" for the whole file)."""
    if not isinstance(raw, dict):
        raise ConfigError(prefix, f"{'must' if prefix else 'the config file must'} be a mapping, got {shown(raw)}")
    hints, names = _fields(cls)
    kwargs = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(path, f"unknown key{suggest(str(key), names)}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], list[str]]:
    """A config dataclass's field types and names; resolving the (string) annotations is most of a build's time."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, {} if value is None else value, path)
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
        raise ConfigError(path, f"expected {' or '.join(_expected(o) for o in options)}, got {shown(value)}")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(path, f"{shown(value)} is not one of {choices}{suggest(value, list(allowed))}")
        return value
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {shown(value)}")
        return [_coerce(item_hint, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {shown(value)}")
        key_hint, item_hint = typing.get_args(hint)
        return {_key(key_hint, k, path): _coerce(item_hint, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(hint, value, path)


def _key(hint: Any, key: Any, path: str) -> Any:
    """A mapping's key checked against `hint`: YAML reads `1:`, `true:` and `null:` as a number, a boolean and
    null, which no config path or metric name is."""
    if hint is str and not isinstance(key, str):
        spelled = "null" if key is None else str(key).lower() if isinstance(key, bool) else shown(key)
        raise ConfigError(
            path, f"key {spelled} is not text; keys here are names (config paths such as model.hidden_size, metrics)"
        )
    return key


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false, got {shown(value)}")
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_WHOLE:
                raise ConfigError(
                    path, f"{shown(value)} is too large; a whole number here stays within +-{MAX_WHOLE:.2g}"
                )
            return value
        raise ConfigError(path, f"expected a whole number, got {shown(value)}{_quoted_number_hint(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(path, f"expected a finite number, got {shown(value)}{_quoted_number_hint(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected text, got {shown(value)}")
    raise TypeError(f"unsupported config type {hint!r} at {path}")


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


def check_unique(key: str, values: list[Any]) -> None:
    """Raise ConfigError at `key[i]` for the first value listed a second time (values are hashable: text or
    numbers, as the builder checked)."""
    seen = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{key}[{i}]", f"{shown(value)} is listed twice; remove the repeat")
        seen.add(value)


def at_least(key: str, value: float, low: float) -> None:
    """Raise ConfigError at `key` unless `value >= low`."""
    if value < low:
        raise ConfigError(key, f"must be >= {low:g}, got {shown(value)}")


def in_range(
    key: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise ConfigError at `key` unless `value` lies in the interval from `low` to `high`, either end open."""
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(key, f"must be in {interval}, got {shown(value)}")


def parse_duration(key: str, text: str) -> float:
    """Seconds in "90", "90s", "30m" or "2h"."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ConfigError(key, f"expected seconds or a duration such as 90s, 30m, 2h; got {shown(text)}")
    return seconds


def suggest(name: Any, options: list[str]) -> str:
    """The hint "; did you mean 'x'?" naming the option closest to a misspelt `name`, or "" when none is close
    (or `name` is no text)."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
