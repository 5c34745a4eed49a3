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


def test_the_summary_says_how_a_tie_was_broken_and_warns_when_the_winner_loses(capsys):
    from lstm_ray.cli import print_summary
    from lstm_ray.sweep.finish import SweepSummary

    summary = SweepSummary(
        name="s",
        metric="val_accuracy",
        mode="max",
        best_params={"model.hidden_size": 8},
        best_value=1.0,
        test_metrics={"test_accuracy": 0.4},
        counts={"completed": 3, "stopped_early": 0, "failed": 0},
        parent_run_id="",
        model_uri="",
        storage_path="/tmp/s",
        elapsed_s=3.0,
        comparison=BaselineComparison("accuracy", "max", {"majority.test_accuracy": 0.5}, {"test": 0.4}),
        tie_note="3 trials tied at val_accuracy 1; the one with the lowest val_loss won",
    )
    print_summary(summary, "sqlite:///mlflow.db")
    out = capsys.readouterr().out
    assert (
        "Best trial: val_accuracy = 1\n  (3 trials tied at val_accuracy 1; the one with the lowest val_loss won)" in out
    )
    assert "Against the naive baselines: winner test_accuracy 0.4 = 0.80x majority (0.5)" in out
    assert "\nWARNING: the winner does not beat the majority baseline on test (test_accuracy)" in out
