"""search.pick: the rule that chooses the sweep's winner among the Pareto front of search.objectives.

    search: {pick: "lowest val_rmse where latency_ms < 5"}       # or `lstm-ray tune CONFIG --pick "..."`
    rule = parse_pick("lowest val_rmse where latency_ms < 5 and model_parameters <= 20000")
    rule.best, rule.metric, rule.conditions   # "lowest", "val_rmse", (Condition("latency_ms", "<", 5.0), ...)

Grammar: `lowest|highest METRIC [where METRIC OP NUMBER [and METRIC OP NUMBER ...]]`, OP one of < <= > >=, each
METRIC one of search.objectives. The front member that meets every condition and has the lowest (highest) METRIC
becomes the winner (`search/front_pick.py` chooses it); without search.pick the winner is the best search.metric.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lstm_ray.config.schema import ExperimentConfig
from lstm_ray.config.strict import suggest
from lstm_ray.errors import ConfigError, shown

KEY = "search.pick"
GRAMMAR = "lowest|highest METRIC [where METRIC OP NUMBER [and ...]], OP one of < <= > >="
EXAMPLE = "e.g. 'lowest val_rmse where latency_ms < 5'"
OPERATORS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                        ">=": operator.ge}  # fmt: skip
TOKENS = re.compile(r"<=|>=|<|>|[^\s<>]+")


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str  # a key of OPERATORS
    value: float

    def holds(self, value: float) -> bool:
        """Whether `value` meets the condition; NaN never does."""
        return not math.isnan(value) and OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class PickRule:
    best: str  # "lowest" or "highest"
    metric: str
    conditions: tuple[Condition, ...] = ()

    @property
    def metrics(self) -> list[str]:
        return [self.metric, *(c.metric for c in self.conditions)]

    def __str__(self) -> str:
        where = f" where {' and '.join(map(str, self.conditions))}" if self.conditions else ""
        return f"{self.best} {self.metric}{where}"


def parse_pick(text: Any) -> PickRule:
    """The rule in `text`; raises ConfigError naming search.pick, the bad part and the grammar on any other input
    (a number, an unknown word, an operator such as ==, a threshold that is not a finite number)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(KEY, f"must be a rule, {EXAMPLE}; got {shown(text)}; grammar: {GRAMMAR}")
    tokens = TOKENS.findall(text)
    if not tokens or tokens[0] not in ("lowest", "highest"):
        raise _bad(text, f"must start with lowest or highest, not {shown(tokens[0] if tokens else text)}")
    if len(tokens) < 2 or not _is_name(tokens[1]):
        raise _bad(text, "expected the metric to rank by after lowest / highest")
    rest = tokens[2:]
    if not rest:
        return PickRule(tokens[0], tokens[1])
    if rest[0] != "where":
        raise _bad(text, f"expected 'where' after the metric, not {shown(rest[0])}")
    conditions = []
    for i in range(1, len(rest), 4):
        metric, op, number, joint = (rest[i : i + 4] + ["", "", "", ""])[:4]
        if not _is_name(metric):
            raise _bad(text, f"expected a metric after {shown(rest[i - 1])}, got {shown(metric or 'nothing')}")
        if op not in OPERATORS:
            raise _bad(text, f"expected one of < <= > >= after {metric}, got {shown(op or 'nothing')}")
        conditions.append(Condition(metric, op, _number(text, number)))
        if joint and joint != "and":
            raise _bad(text, f"conditions are joined by 'and', not {shown(joint)}")
        if joint and i + 4 >= len(rest):
            raise _bad(text, "a condition must follow 'and'")
    if len(rest) == 1:
        raise _bad(text, "a condition such as latency_ms < 5 must follow 'where'")
    return PickRule(tokens[0], tokens[1], tuple(conditions))


def check_pick(cfg: ExperimentConfig) -> PickRule | None:
    """search.pick against search.objectives (every metric it names must be one); None without search.pick.
    Raises ConfigError naming search.pick."""
    search = cfg.search
    if search.pick is None:
        return None
    rule = parse_pick(search.pick)
    objectives = [o["metric"] for o in search.objectives]
    if not objectives:
        raise ConfigError(KEY, "picks a member of the Pareto front, so it needs search.objectives; set them or drop it")
    for metric in rule.metrics:
        if metric not in objectives:
            raise ConfigError(
                KEY,
                f"names {metric!r}, which is not one of search.objectives ({', '.join(objectives)})"
                f"{suggest(metric, objectives)}",
            )
    if search.reevaluate is not None:
        raise ConfigError(KEY, "search.reevaluate retrains the best by search.metric and picks from those; drop one")
    return rule


def _is_name(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", token)) and token not in ("where", "and")


def _number(text: str, token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _bad(text, f"expected a number, got {shown(token or 'nothing')} (no units: latency_ms < 5)") from None
    if not math.isfinite(value):
        raise _bad(text, f"expected a finite number, got {shown(token)}")
    return value


def _bad(text: str, problem: str) -> ConfigError:
    return ConfigError(KEY, f"{shown(text)}: {problem}; grammar: {GRAMMAR}, {EXAMPLE}")
