"""The sweep's winner from a real Tune run: the best metric over all epochs, ties broken by the best epoch's
val_loss, and that epoch's checkpoint."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from ray import tune

from lstm_ray.sweep.winner import pick_winner

COLUMNS = ("val_accuracy", "val_loss", "val_rmse", "val_r2", "val_mae")
# Per trial, what it reports each epoch (in COLUMNS order), each with a checkpoint that records the epoch. The
# trial that loses the tie comes first, as Tune's get_best_result would pick it.
PLANS = {
    # ties at its first epoch, whose val_loss is 0.30 (its val_mae is 0.3 up to rounding); its lowest val_loss
    # overall (0.01) is at a worse epoch and must not count.
    "tie_high_loss": [(1.0, 0.30, 0.30, 0.4, 0.1 + 0.2), (0.7, 0.01, 0.35, 0.5, 0.45)],
    # val_accuracy 1 and val_mae 0.3 at epochs 1 and 2; epoch 2 has the lower val_loss (0.20), so it is the best.
    "tie_low_loss": [
        (0.5, 0.90, 0.50, 0.1, 0.5),
        (1.0, 0.35, 0.40, 0.2, 0.3),
        (1.0, 0.20, 0.45, 0.3, 0.3),
        (0.8, 0.15, 0.60, 0.2, 0.4),
    ],
    # a strict best val_rmse and val_r2 with the highest val_loss of all
    "strict_best": [(0.9, 0.95, 0.10, 0.9, 0.35), (0.6, 0.99, 0.20, 0.8, 0.4)],
    # infinite and NaN values, which would win if they were not skipped, then ordinary ones
    "not_finite": [(math.inf, 0.05, math.nan, math.inf, -math.inf), (0.9, 0.05, 0.25, 0.7, 0.35)],
    "fails": [],  # raises before its first report
}


def plan_trainable():
    """A trainable that reports each trial's plan. Defined inside a function so that Ray pickles it by value:
    Ray's workers cannot import this test module."""

    def report_plan(config: dict) -> None:
        plan = PLANS[config["plan"]]
        if not plan:
            raise RuntimeError("failed before reporting")
        for epoch, values in enumerate(plan):
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "epoch").write_text(str(epoch))
                metrics = dict(zip(COLUMNS, values, strict=True)) | {"epoch": epoch}
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    return report_plan


@pytest.fixture(scope="module")
def results(local_ray, tmp_path_factory):
    run = tune.RunConfig(name="winner", storage_path=str(tmp_path_factory.mktemp("tune")), verbose=0)
    space = {"plan": tune.grid_search(list(PLANS))}
    grid = tune.Tuner(plan_trainable(), param_space=space, run_config=run).fit()
    assert sum(r.error is not None for r in grid) == 1  # the failing trial is in the grid, without metrics
    return grid


def plan_of(winner) -> str:
    return winner.result.config["plan"]


def epoch_of(checkpoint) -> int:
    return int(Path(checkpoint.path, "epoch").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "mode", "value"), [("val_accuracy", "max", "1"), ("val_mae", "min", "0.3")])
def test_a_tie_goes_to_the_trial_whose_best_epoch_has_the_lowest_val_loss(results, metric, mode, value):
    winner = pick_winner(results, metric, mode)
    assert plan_of(winner) == "tie_low_loss" and winner.tied == 2
    assert winner.note == f"2 trials tied at {metric} {value}; the one with the lowest val_loss won"


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "mode"), [("val_accuracy", "max"), ("val_mae", "min")])
def test_the_checkpoint_is_the_tied_epoch_with_the_lowest_val_loss(results, metric, mode):
    assert epoch_of(pick_winner(results, metric, mode).checkpoint) == 2  # not epoch 1, which reached it first


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "mode"), [("val_rmse", "min"), ("val_r2", "max")])
def test_a_strict_best_wins_whatever_its_val_loss(results, metric, mode):
    winner = pick_winner(results, metric, mode)
    assert plan_of(winner) == "strict_best" and winner.tied == 1 and winner.note == ""
    assert epoch_of(winner.checkpoint) == 0


@pytest.mark.slow
def test_an_unreported_metric_raises(results):
    with pytest.raises(ValueError, match="no trial reported a finite val_f1"):
        pick_winner(results, "val_f1", "max")


def test_an_unknown_mode_raises():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        pick_winner([], "val_loss", "lowest")
