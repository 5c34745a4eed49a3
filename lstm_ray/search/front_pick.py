"""Which member of a sweep's Pareto front search.pick chooses as the winner.

    rule = parse_pick("lowest val_rmse where latency_ms < 5")          # config/pick.py
    choice = pick_member(front, rule)     # front: rows with trial_id and the objectives (sweep/finish.py)
    choice.chosen                         # the row the rule picks, or None when no member meets it
    choice.closest                        # then the member that misses the conditions by the least

Ray-free and MLflow-free: the sweep's finish turns the chosen row back into its trial and checkpoint.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lstm_ray.config.pick import Condition, PickRule

TINY = 1e-9  # the least threshold a miss is measured against: a relative miss from a threshold of 0 stays finite
Row = Mapping[str, Any]  # one front member: trial_id, epoch, each objective's value, params


@dataclass(frozen=True)
class FrontPick:
    rule: PickRule
    chosen: Row | None  # the member the rule picks; None when none meets its conditions
    closest: Row | None = None  # with chosen None: the member nearest to meeting every condition

    def picked_line(self) -> str:
        """What the CLI prints about the choice (only meaningful when `chosen` is set)."""
        row = self.chosen or {}
        picked = f"Picked trial {row.get('trial_id')} from the Pareto front by search.pick '{self.rule}'"
        return f"{picked}: {_values(row, self.rule)}"

    def missed_line(self, metric: str, winner: str, register_as: str | None) -> str:
        """The `warning:` line when no member meets the rule: the closest member, and that the default winner
        (best `metric`, trial `winner`) stays and nothing is registered as `register_as`."""
        closest = self.closest or {}
        registered = f"; nothing is registered as {register_as!r}" if register_as else ""
        return (
            f"warning: search.pick '{self.rule}': no member of the Pareto front meets it; the closest is trial "
            f"{closest.get('trial_id')} ({_values(closest, self.rule)}); the winner stays the best {metric}, "
            f"trial {winner}{registered}"
        )


def pick_member(front: Sequence[Row], rule: PickRule) -> FrontPick:
    """Of the members of `front` that meet every condition of `rule`, the one with the lowest (highest) value of
    `rule.metric`; ties go to the earlier member. A missing or NaN value meets no condition and ranks last.
    With no member meeting the rule, `closest` is the one whose conditions miss by the least (`shortfall`)."""
    meeting = [row for row in front if all(c.holds(_value(row, c.metric)) for c in rule.conditions)]
    if meeting:
        sign = 1.0 if rule.best == "lowest" else -1.0
        return FrontPick(rule, min(meeting, key=lambda row: _rank(sign * _value(row, rule.metric))))
    closest = min(front, key=lambda row: shortfall(row, rule.conditions)) if front else None
    return FrontPick(rule, None, closest)


def shortfall(row: Row, conditions: Sequence[Condition]) -> float:
    """How far `row` is from meeting `conditions`: the sum of each unmet condition's miss relative to its
    threshold (|value - threshold| / |threshold|, at least TINY); inf when a value is missing."""
    total = 0.0
    for condition in conditions:
        value = _value(row, condition.metric)
        if math.isnan(value):
            return math.inf
        if not condition.holds(value):
            total += abs(value - condition.value) / max(abs(condition.value), TINY)
    return total


def _value(row: Row, metric: str) -> float:
    value = row.get(metric)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    return float(value)


def _rank(value: float) -> float:
    return math.inf if math.isnan(value) else value


def _values(row: Row, rule: PickRule) -> str:
    return ", ".join(f"{metric} = {_value(row, metric):.5g}" for metric in dict.fromkeys(rule.metrics))
