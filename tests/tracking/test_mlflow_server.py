"""Sweeps logging through a real MLflow tracking server that is stopped mid-sweep: nothing is lost.

The server is `scripts/mlflow_server.py` (SQLite, proxied artifacts, one worker, 127.0.0.1), stopped and
restarted by its PID. What Ray Tune recorded for every trial (its result.json files) is the ground truth that
MLflow must hold in the end. A 60 s outage in the middle of a sweep on a cluster is the chaos suite's
(tests/chaos/test_mlflow_outage.py); here the server stays down past the sweep's end.
"""

from __future__ import annotations

import threading

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from mlflow_server_process import ServerProcess
from tracked_metrics import logged, reported, wait_for_first_metric

from lstm_ray import cli
from lstm_ray.config import parse_config

pytestmark = pytest.mark.slow


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
    from lstm_ray.sweep.tuning import run_sweep

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = run_sweep(cfg, config_text="name: tiny\n")
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome["error"] = err

    thread = threading.Thread(target=run, name="sweep")
    thread.start()
    return thread, outcome


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
    truth = reported(summary.storage_path)
    assert len(truth) == 8 and logged(client, summary.parent_run_id, truth) == truth
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
