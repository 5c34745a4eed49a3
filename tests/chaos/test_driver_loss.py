"""The sweep's driver is killed with SIGKILL mid-sweep; `lstm-ray resume` finishes it into the same MLflow runs.

SIGKILL gives the driver no chance to save anything or close its runs: what survives is Tune's last snapshot of
the experiment in storage and what the outbox had sent to MLflow. The driver's trials on the cluster die with it.
"""

from __future__ import annotations

import pytest
from cli_runs import cli, finish
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis
from resume_runs import RESUMED_TRIALS, assert_resumed_into_the_same_runs, resumable_sweep, sweep_runs
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder, with_snapshot
from tune_runs import kill_session

from chaos.sweeps import run_cli, tune_rows, wait_until
from lstm_ray.storage import INFO_FILE

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def ended_trials(client: MlflowClient) -> int:
    return sum(run.info.status != "RUNNING" for run in sweep_runs(client)[1])


def training(results, client: MlflowClient) -> bool:
    """Whether a trial whose run is still open has trained two epochs or more."""
    running = {run.data.tags["lstm_ray.trial_id"] for run in sweep_runs(client)[1] if run.info.status == "RUNNING"}
    return any(trial in running and len(rows) >= 2 for trial, rows in tune_rows(results).items())


def test_a_sigkilled_driver_resumes_into_the_same_runs(cluster, mlflow_server, tmp_path):
    sweep = tmp_path / "tiny.yaml"
    resumable_sweep(sweep, mlflow_server.url, str(tmp_path / "results"), keep_checkpoints=1)  # watched in storage
    client = MlflowClient(mlflow_server.url)
    first = cli("tune", str(sweep), cwd=tmp_path, env=cluster.client_env())
    try:
        wait_until(
            lambda: ended_trials(client) >= 2 and training(tmp_path / "results", client), "a trial in training", first
        )
        kill_session(first.pid)  # the driver alone: the cluster runs in sessions of its own
    finally:
        finish(first)
    parents, _ = sweep_runs(client)
    assert parents[0].info.status == "RUNNING"  # nobody could close it
    (folder,) = (tmp_path / "results").iterdir()
    assert (folder / INFO_FILE).is_file()
    snapshot = {t.trial_id: t.last_result for t in ExperimentAnalysis(str(folder)).trials if t.last_result}

    code, out = run_cli(cluster, "resume", "tiny", "--storage", str(tmp_path / "results"), cwd=tmp_path)
    assert code == 0 and f"Sweep tiny: {RESUMED_TRIALS} trials" in out, out[-3000:]
    assert_resumed_into_the_same_runs(client, out)
    # Each run holds every epoch Tune recorded, once, with a value Tune recorded (Tune's own record holds an epoch
    # twice when it was trained before the kill and again after the resume, from an older snapshot).
    truth = with_snapshot(reported(sweep_folder(out)), snapshot)
    history = logged(client, parent_run_id(out), truth)
    assert epochs_once_each(history)
    for trial, metrics in history.items():
        for key, values in metrics.items():
            assert set(values) <= set(truth[trial][key]) and {e for e, _ in values} == {e for e, _ in truth[trial][key]}
