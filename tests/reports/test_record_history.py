"""A trial's history read back from MLflow: one row per epoch of its curves and epoch times; its sizes, logged once
at step 0 (`train_windows` begins with "train_" like the curves), stay out of it."""

from __future__ import annotations

import math

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from lstm_ray import outcomes
from lstm_ray.reports import SweepRecord
from lstm_ray.tracking.callbacks import EPOCH_SECONDS, trial_metrics
from lstm_ray.tracking.runs import TAG_OUTCOME, TAG_TRIAL_ID

SETTINGS = {"name": "sized", "search.metric": "val_rmse", "search.mode": "min", "search.scheduler": "asha",
            "search.grace_period": "1", "search.reduction_factor": "2", "train.max_epochs": "2"}  # fmt: skip


def sweep_with_one_trial(tmp_path) -> tuple[MlflowClient, str]:
    """A real SQLite store: a parent run and one trial run logged as the TrialLogger logs it (each epoch's
    `trial_metrics`, then the sizes at step 0 with its end)."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("sized", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment).info.run_id
    client.log_batch(parent, params=[Param(k, v) for k, v in SETTINGS.items()])
    tags = [RunTag("mlflow.parentRunId", parent), RunTag(TAG_TRIAL_ID, "t_00000"), RunTag(TAG_OUTCOME, "completed")]
    child = client.create_run(experiment, tags={t.key: t.value for t in tags}).info.run_id
    client.log_batch(child, params=[Param("train.lr", "0.01")])
    for epoch, (loss, rmse, seconds) in enumerate([(0.5, 0.9, 0.25), (0.4, 0.8, 0.75)], start=1):
        result = {"epoch": epoch, "train_loss": loss, "val_rmse": rmse, "time_this_iter_s": seconds, "done": False}
        client.log_batch(child, metrics=trial_metrics(result))
    sizes = [Metric("model_parameters", 321.0, 0, 0), Metric("train_windows", 600.0, 0, 0)]
    client.log_batch(child, metrics=sizes)
    client.set_terminated(child)
    return client, parent


def test_a_trials_history_holds_its_epochs_and_not_its_sizes(tmp_path):
    client, parent = sweep_with_one_trial(tmp_path)
    [trial] = SweepRecord.from_mlflow(client, parent).trials
    assert list(trial.history["epoch"]) == [1, 2]
    assert set(trial.history.columns) == {"epoch", "train_loss", "val_rmse", EPOCH_SECONDS}
    assert list(trial.history[EPOCH_SECONDS]) == pytest.approx([0.25, 0.75])
    assert (trial.model_parameters, trial.train_windows, trial.outcome) == (321.0, 600.0, outcomes.COMPLETED)
    board = SweepRecord.from_mlflow(client, parent).leaderboard()
    assert board.loc[0, "epochs"] == 2 and board.loc[0, "best_val_rmse"] == pytest.approx(0.8)


@pytest.mark.parametrize("seconds", [None, math.nan])
def test_an_epoch_without_a_time_logs_no_epoch_seconds(seconds):
    result = {"epoch": 1, "train_loss": 0.5} | ({} if seconds is None else {"time_this_iter_s": seconds})
    assert [m.key for m in trial_metrics(result)] == ["train_loss"]


def test_a_mapping_param_with_nulls_reads_back_as_the_mapping(tmp_path):
    client, parent = sweep_with_one_trial(tmp_path)  # MLflow holds str() of each value: None, not YAML's null
    client.log_param(parent, "search.budget", str({"usd": 0.4, "gpu_hours": None}))
    client.log_param(parent, "model.cell", "lstm")
    base = SweepRecord.from_mlflow(client, parent).base
    assert base["search.budget"] == {"usd": 0.4, "gpu_hours": None} and base["model.cell"] == "lstm"
