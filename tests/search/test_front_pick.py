"""Picking a Pareto front member by search.pick on synthetic fronts: the member that meets every condition with
the best value of the rule's metric, and the closest member when none meets it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from lstm_ray.config.pick import parse_pick
from lstm_ray.search.front_pick import pick_member, shortfall

# val_rmse falls as latency rises: a front of four, best val_rmse first (as finish.pareto_trials sorts it).
FRONT = [
    {"trial_id": "big", "val_rmse": 0.10, "latency_ms": 12.0, "model_parameters": 90_000.0},
    {"trial_id": "mid", "val_rmse": 0.15, "latency_ms": 6.0, "model_parameters": 20_000.0},
    {"trial_id": "small", "val_rmse": 0.22, "latency_ms": 4.0, "model_parameters": 3_000.0},
    {"trial_id": "tiny", "val_rmse": 0.40, "latency_ms": 1.0, "model_parameters": 200.0},
]


def _picked(rule: str) -> str | None:
    chosen = pick_member(FRONT, parse_pick(rule)).chosen
    return chosen["trial_id"] if chosen else None


def test_lowest_error_under_a_latency_picks_the_best_that_fits():
    assert _picked("lowest val_rmse where latency_ms < 5") == "small"
    assert _picked("lowest val_rmse where latency_ms <= 6") == "mid"
    assert _picked("lowest val_rmse where latency_ms < 6") == "small"  # strict: 6 ms does not fit


def test_without_conditions_the_rule_ranks_the_whole_front():
    assert _picked("lowest val_rmse") == "big"
    assert _picked("lowest model_parameters") == "tiny"
    assert _picked("highest latency_ms") == "big"


def test_every_condition_must_hold():
    assert _picked("lowest val_rmse where latency_ms < 10 and model_parameters <= 5000") == "small"
    assert _picked("highest val_rmse where val_rmse < 0.3 and latency_ms > 5") == "mid"


def test_no_member_meets_the_rule_then_the_closest_is_named():
    choice = pick_member(FRONT, parse_pick("lowest val_rmse where latency_ms < 0.8"))
    assert choice.chosen is None and choice.closest["trial_id"] == "tiny"
    line = choice.missed_line("val_rmse", "big", "forecaster")
    assert line.startswith("warning: search.pick 'lowest val_rmse where latency_ms < 0.8': no member")
    assert "closest is trial tiny (val_rmse = 0.4, latency_ms = 1)" in line
    assert "winner stays the best val_rmse, trial big" in line and "nothing is registered as 'forecaster'" in line
    # Two conditions: the member whose relative misses add up to the least.
    choice = pick_member(FRONT, parse_pick("lowest val_rmse where latency_ms < 3 and val_rmse < 0.2"))
    assert choice.chosen is None and choice.closest["trial_id"] == "small"  # misses by 1/3 + 0.1, tiny by 1.0


def test_a_member_missing_a_value_never_meets_a_condition_on_it():
    front = [{"trial_id": "old", "val_rmse": 0.1}, *FRONT[2:]]
    assert _picked_from(front, "lowest val_rmse where latency_ms < 100") == "small"
    assert shortfall(front[0], parse_pick("lowest val_rmse where latency_ms < 5").conditions) == math.inf


def _picked_from(front, rule):
    chosen = pick_member(front, parse_pick(rule)).chosen
    return chosen["trial_id"] if chosen else None


values = st.floats(0.0, 100.0, allow_nan=False)
fronts = st.lists(st.fixed_dictionaries({"val_rmse": values, "latency_ms": values}), min_size=1, max_size=8)


@given(fronts, values)
def test_the_pick_meets_the_rule_and_no_member_that_meets_it_is_better(front, limit):
    front = [row | {"trial_id": f"t{i}"} for i, row in enumerate(front)]
    choice = pick_member(front, parse_pick(f"lowest val_rmse where latency_ms <= {limit!r}"))
    meeting = [row for row in front if row["latency_ms"] <= limit]
    if not meeting:
        assert choice.chosen is None and choice.closest is min(front, key=lambda row: row["latency_ms"])
    else:
        assert choice.chosen["latency_ms"] <= limit
        assert choice.chosen["val_rmse"] == min(row["val_rmse"] for row in meeting)
