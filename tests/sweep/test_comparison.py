"""The winner against the baselines: ratios, the best baseline per split, and the WARNING when it loses."""

from __future__ import annotations

import math

from lstm_ray.sweep.comparison import BaselineComparison

SCORES = {
    "last_value.val_rmse": 0.5,
    "drift.val_rmse": 0.4,
    "last_value.test_rmse": 0.6,
    "drift.test_rmse": 0.8,
    "last_value.val_mae": 0.3,
}


def test_the_winner_is_compared_with_the_best_baseline_of_each_split():
    comparison = BaselineComparison("rmse", "min", SCORES, {"val": 0.2, "test": 0.3})
    assert comparison.best("val") == "drift" and comparison.best("test") == "last_value"
    assert comparison.ratio("val") == 0.5 and comparison.ratio("test") == 0.5
    assert comparison.metrics()["baseline.drift.val_rmse"] == 0.4
    assert comparison.metrics()["test_rmse_vs_baseline"] == 0.5
    assert comparison.lines() == [
        "winner val_rmse 0.2 = 0.50x drift (0.4)",
        "winner test_rmse 0.3 = 0.50x last_value (0.6)",
    ]


def test_a_winner_that_loses_on_test_gets_a_warning():
    comparison = BaselineComparison("rmse", "min", SCORES, {"val": 0.3, "test": 0.9})
    lines = comparison.lines()
    assert lines[1] == "winner test_rmse 0.9 = 1.50x last_value (0.6)"
    assert lines[2].startswith("WARNING: the winner does not beat the last_value baseline on test (test_rmse)")
    assert not any(line.startswith("WARNING") and " on val " in line for line in lines)


def test_for_accuracy_higher_is_better_and_no_baseline_means_no_verdict():
    scores = {"majority.val_accuracy": 0.6, "prior.val_accuracy": 0.6, "majority.test_accuracy": 0.5}
    comparison = BaselineComparison("accuracy", "max", scores, {"val": 0.55, "test": 0.9})
    assert not comparison.beats("val") and comparison.beats("test")
    assert any(line.startswith("WARNING") and "on val" in line for line in comparison.lines())
    empty = BaselineComparison("rmse", "min", {}, {"val": 1.0, "test": 1.0})
    assert empty.best("val") == "" and math.isnan(empty.ratio("val")) and empty.lines() == []
    assert "test_rmse_vs_baseline" not in empty.metrics()
