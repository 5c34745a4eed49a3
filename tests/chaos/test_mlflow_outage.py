"""The MLflow tracking server is down for 60 s in the middle of a sweep: no trial fails, no metric is lost.

The server (scripts/mlflow_server.py) is stopped by its PID once the first metric has reached it and started
again, on the same port and store, after at least 60 s and after trials have both started and ended without it.
Meanwhile the driver's outbox keeps every write and retries.
"""

from __future__ import annotations

import time

import pytest
from cli_runs import cli, finish
from mlflow.tracking import MlflowClient
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder, wait_for_first_metric

from chaos.sweeps import random_sweep, tune_rows, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

OUTAGE_S = 60
TRIALS = 6  # three waves on two slots
EPOCHS = 30  # ~10 s a trial here: the sweep outlasts the delay before its first metric reaches the server


def test_a_60s_outage_mid_sweep_fails_no_trial_and_loses_no_metric(cluster, mlflow_server, tmp_path):
    tracking = {"uri": mlflow_server.url, "flush_timeout_s": 600}
    sweep = random_sweep(tmp_path, "chaos-outage", mlflow_server.url, TRIALS, EPOCHS, tracking=tracking)
    results = tmp_path / "results"
    driver = cli("tune", str(sweep), cwd=tmp_path, env=cluster.client_env())
    try:
        wait_for_first_metric(mlflow_server.url, "chaos-outage")
        mlflow_server.stop()
        down_since, before = time.time(), tune_rows(results)
        # Trials train, end and start while the server is down (a guard on the test itself, not the product).
        wait_until(lambda: len(tune_rows(results)) > len(before) + 1, "two trials started during the outage", driver)
        time.sleep(max(0.0, down_since + OUTAGE_S - time.time()))
        # Ray stamps results with whole seconds.
        during = [r for rows in tune_rows(results).values() for r in rows if r["timestamp"] >= int(down_since)]
        mlflow_server.start()
        out = finish(driver)
    finally:
        finish(driver)
    assert driver.returncode == 0, out[-3000:]
    assert f"Sweep chaos-outage: {TRIALS} trials" in out and "0 failed" in out, out[-3000:]
    assert "MLflow write failed" in out, "no write met the outage"
    since = {trial: [r["timestamp"] - int(down_since) for r in rows] for trial, rows in tune_rows(results).items()}
    assert len(during) >= EPOCHS, f"when each trial's epochs ended, in s after the server stopped: {since}"

    client = MlflowClient(mlflow_server.url)
    truth = reported(sweep_folder(out))
    assert len(truth) == TRIALS and epochs_once_each(truth)
    assert logged(client, parent_run_id(out), truth) == truth
    parent = client.get_run(parent_run_id(out))
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_completed"] == TRIALS
    assert not list(results.glob("mlflow-outbox/*"))  # everything reached the server: nothing was spilled
