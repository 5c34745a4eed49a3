"""Trials that fail, each in a way a user meets: the rest of the sweep is unaffected and every failure is explained.

The sweep runs through the real `lstm-ray tune` command. HyperOpt tries its `points_to_evaluate` first, so
the five trials are exactly these, each failing (or not) by what it was given:
- a searched combination the model refuses (proj_size 16 with hidden_size 8): ConfigError inside the trial;
- plain SGD at lr 10 with no clipping on globally scaled windows: the loss turns NaN in epoch 1 (DivergedError);
- hidden_size 4096 under resources.memory_mb 1024: its weights alone outgrow the limit (TrialOutOfMemory);
- two ordinary trials, which must complete.
"""

from __future__ import annotations

import math
import pickle
import re

import hyperopt
import pytest
from mlflow.tracking import MlflowClient
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder

from chaos.sweeps import run_cli, write_sweep

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

EPOCHS = 3
POINTS = {  # (hidden_size, proj_size, lr) -> how the trial ends
    (8, 0, 0.01): "max_epochs reached",
    (8, 0, 0.03): "max_epochs reached",
    (8, 16, 0.01): "ConfigError: model.proj_size: must be below hidden_size 8, got 16; or 0 for off",
    (8, 0, 10.0): "DivergedError: train loss became nan at epoch 1; lower train.lr or clip harder",
    (4096, 0, 0.01): "TrialOutOfMemory: out of memory: the trial needed more than resources.memory_mb=1024; "
    "lower train.batch_size, model.hidden_size or data.lookback, or raise resources.memory_mb",
}
FAILED = [reason for reason in POINTS.values() if reason != "max_epochs reached"]


@pytest.fixture(scope="module")
def failing_sweep(cluster, mlflow_server, tmp_path_factory):
    """The five trials run to the sweep's end: (exit code, CLI output)."""
    folder = tmp_path_factory.mktemp("failures")
    sweep = write_sweep(
        folder,
        "chaos-failures",
        mlflow_server.url,
        data={"window_norm": "none"},  # globally scaled windows, where SGD at lr 10 diverges
        model={"hidden_size": 32},  # the base config: each searched value is valid with it
        train={"max_epochs": EPOCHS, "batch_size": 16, "optimizer": "sgd", "grad_clip": 0.0},
        search={
            "algorithm": "hyperopt",
            "scheduler": "fifo",
            "num_samples": len(POINTS),
            "space": {
                "model.hidden_size": {"choice": [8, 4096]},
                "model.proj_size": {"choice": [0, 16]},
                "train.lr": {"choice": [0.01, 0.03, 10.0]},
            },
            "points_to_evaluate": [
                {"model.hidden_size": h, "model.proj_size": p, "train.lr": lr} for h, p, lr in POINTS
            ],
        },
        resources={"cpu": 1, "memory_mb": 1024},
    )
    return run_cli(cluster, "tune", str(sweep), cwd=folder)


def test_each_failure_is_explained_in_the_cli_summary(failing_sweep):
    code, out = failing_sweep
    assert code == 0, out[-3000:]
    assert f"Sweep chaos-failures: {len(POINTS)} trials" in out and "(2 completed, 0 stopped early, 3 failed)" in out
    listed = re.findall(r"^  failed (\w+): (.+)$", out, re.M)
    assert len(listed) == 3 and len({trial for trial, _ in listed}) == 3
    assert "Traceback" not in out  # without --verbose each failed attempt is one line, not Ray's traceback
    for reason in FAILED:
        assert sum(reason in line for _, line in listed) == 1, (reason, listed)


def test_each_failure_is_explained_in_mlflow_and_the_other_trials_finish(failing_sweep, mlflow_server):
    _, out = failing_sweep
    client = MlflowClient(mlflow_server.url)
    parent = client.get_run(parent_run_id(out))
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == len(POINTS)
    for run in children:
        point = tuple(float(run.data.params[k]) for k in ("model.hidden_size", "model.proj_size", "train.lr"))
        reason = POINTS[point]
        assert reason in run.data.tags["lstm_ray.stop_reason"], run.data.tags
        assert run.info.status == ("FINISHED" if reason == "max_epochs reached" else "FAILED")
    failed = {run.data.tags["lstm_ray.trial_id"] for run in children if run.info.status == "FAILED"}
    truth = reported(sweep_folder(out))
    assert len(truth) == 2 and all(len(m["val_rmse"]) == EPOCHS for m in truth.values()) and epochs_once_each(truth)
    assert logged(client, parent.info.run_id, truth) == truth | {trial: {} for trial in failed}  # no NaN logged
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_failed"] == 3


def test_the_searcher_never_hears_nan(failing_sweep):
    _, out = failing_sweep
    folder = sweep_folder(out)
    results = [row for rows in reported(folder).values() for row in rows["val_rmse"]]
    assert results and all(math.isfinite(value) for _, value in results)  # what Tune handed the searcher
    (state,) = folder.glob("searcher-state-*.pkl")  # HyperOpt's trials as Tune saved them
    trials = pickle.loads(state.read_bytes())["_hpopt_trials"]
    done = [t for t in trials._dynamic_trials if t["state"] == hyperopt.JOB_STATE_DONE]
    errored = [t for t in trials._dynamic_trials if t["state"] == hyperopt.JOB_STATE_ERROR]
    assert len(done) == 2 and len(errored) == 3
    assert all(math.isfinite(t["result"]["loss"]) for t in done)
    assert all("loss" not in t["result"] for t in errored)  # a failed trial is no score at all
