"""Sweeps logging through a real MLflow tracking server that is stopped mid-sweep: nothing is lost.

The server is `scripts/mlflow_server.py` (SQLite, proxied artifacts, one worker, 127.0.0.1), stopped and
restarted by its PID. What Ray Tune recorded for every trial (its result.json files) is the ground truth that
MLflow must hold in the end.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from mlflow_server_process import ServerProcess

from lstm_ray import cli
from lstm_ray.config import parse_config
from lstm_ray.tracking import connect

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

OUTAGE_S = 30
WAIT_LIMIT_S = 600  # a guard against a sweep that never logs, not a timing assertion


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path / "server")
    process.start()
    yield process
    process.stop()


def outage_config(tiny_raw, tmp_path, url: str, experiment: str, **tracking):
    tiny_raw["train"] |= {"max_epochs": 8, "batch_size": 16}  # long enough that trials train through the outage
    tiny_raw["search"] = {
        "algorithm": "random",
        "scheduler": "fifo",
        "num_samples": 8,
        "space": {"model.hidden_size": {"choice": [4, 8]}, "train.lr": {"loguniform": [1e-3, 3e-2]}},
    }
    tiny_raw["tracking"] = {"uri": url, "experiment": experiment} | tracking
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    return parse_config(tiny_raw)


def start_sweep(cfg) -> tuple[threading.Thread, dict]:
    from lstm_ray.tuning import run_sweep

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = run_sweep(cfg, config_text="name: tiny\n")
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome["error"] = err

    thread = threading.Thread(target=run, name="sweep")
    thread.start()
    return thread, outcome


def wait_for_first_metric(url: str, experiment: str) -> None:
    """Block until some child run of the sweep holds a metric in the server."""
    client = connect(url)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        trials = client.search_runs([found.experiment_id], "tags.`lstm_ray.role` = 'trial'") if found else []
        if any(run.data.metrics for run in trials):
            return
        time.sleep(0.5)
    raise AssertionError(f"no trial metric reached the server within {WAIT_LIMIT_S} s")


def trained(summary) -> dict[str, dict[str, set]]:
    """Trial id -> metric -> {(epoch, value)} as Ray Tune recorded them."""
    out: dict[str, dict[str, set]] = {}
    for path in Path(summary.storage_path).glob("*/result.json"):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            metrics = out.setdefault(result["trial_id"], {})
            for key in ("train_loss", "val_rmse"):
                metrics.setdefault(key, set()).add((result["epoch"], result[key]))
    return out


def logged(client: MlflowClient, parent_run_id: str) -> dict[str, dict[str, set]]:
    """Trial id -> metric -> {(step, value)} as the server holds them."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    return {
        child.data.tags["lstm_ray.trial_id"]: {
            key: {(m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)}
            for key in ("train_loss", "val_rmse")
        }
        for child in children
    }


def test_a_30s_outage_mid_sweep_fails_no_trial_and_loses_no_metric(server, tiny_raw, tmp_path, local_ray, caplog):
    cfg = outage_config(tiny_raw, tmp_path, server.url, "outage", flush_timeout_s=600)
    caplog.set_level(logging.WARNING, logger="lstm_ray.outbox")
    thread, outcome = start_sweep(cfg)
    wait_for_first_metric(server.url, "outage")
    server.stop()
    time.sleep(OUTAGE_S)
    server.start()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert any("MLflow write failed" in r.message for r in caplog.records), "no write met the outage"
    assert summary.counts["failed"] == 0 and sum(summary.counts.values()) == 8
    client = MlflowClient(server.url)
    truth = trained(summary)
    assert len(truth) == 8 and logged(client, summary.parent_run_id) == truth
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_total"] == 8
    assert summary.model_uri and parent.data.tags["lstm_ray.model_uri"] == summary.model_uri
    assert not list((tmp_path / "results").glob("mlflow-outbox/*"))  # nothing was left to spill


def test_an_outage_outlasting_the_sweep_is_spilled_then_sent_by_report(server, tiny_raw, tmp_path, local_ray, capsys):
    cfg = outage_config(tiny_raw, tmp_path, server.url, "spill", flush_timeout_s=5, register_as="spill-forecaster")
    thread, outcome = start_sweep(cfg)
    wait_for_first_metric(server.url, "spill")
    server.stop()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    spill = tmp_path / "results" / "mlflow-outbox" / summary.parent_run_id
    assert (spill / "outbox.json").exists() and summary.model_uri == ""

    server.start()
    capsys.readouterr()
    assert cli.main(["report", "spill", "--tracking-uri", server.url, "--storage", str(tmp_path / "results"),
                     "--out", str(tmp_path / "report")]) == 0  # fmt: skip
    assert not spill.exists()
    client = MlflowClient(server.url)
    truth = trained(summary)
    assert len(truth) == 8 and logged(client, summary.parent_run_id) == truth
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_total"] == 8
    artifacts = {a.path for a in client.list_artifacts(summary.parent_run_id)}
    assert {"leaderboard.parquet", "leaderboard.json", "report"} <= artifacts
    mlflow.set_tracking_uri(server.url)
    model = mlflow.pyfunc.load_model("models:/spill-forecaster/1")
    from lstm_ray.data.sources import read_table

    forecast = model.predict(read_table("builtin:co2").to_pandas())
    assert list(forecast["step"]) == [1, 2] and np.isfinite(forecast["co2"]).all()
    assert parent.data.tags["lstm_ray.model_uri"].startswith("models:/")
    assert (tmp_path / "report" / "report.html").exists()
