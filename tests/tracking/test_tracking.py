"""tracking/ (the parent run, the Tune callbacks, the outbox) against real MLflow stores (SQLite files; a closed
port for an unreachable server)."""

from __future__ import annotations

import json
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow_server_process import free_port

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.tracking.callbacks import flatten
from lstm_ray.tracking.outbox import SPILL_FILE, Outbox, Write, replay_spilled, spill_folder
from lstm_ray.tracking.runs import CLIENT_DEFAULTS, connect
from lstm_ray.tracking.sweep import checkpoint_trials, git_commit, sweep_params


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    """One SQLite store for the module: creating its tables takes seconds."""
    folder = tmp_path_factory.mktemp("store")
    return connect(f"sqlite:///{folder}/mlflow.db"), folder


@pytest.fixture
def sqlite_parent(sqlite_store, request):
    client, folder = sqlite_store
    experiment_id = client.create_experiment(request.node.name, artifact_location=str(folder / request.node.name))
    return client, experiment_id, client.create_run(experiment_id).info.run_id


def test_outbox_delivers_trial_runs_with_epoch_steps_in_order(sqlite_parent):
    client, experiment_id, parent = sqlite_parent
    outbox = Outbox(client, experiment_id, parent)
    outbox.put(Write("start", "t1", params=[Param("train.lr", "0.01")], run_name="t1"))
    for epoch in (1, 2, 3):
        outbox.put(Write("log", "t1", metrics=[Metric("val_rmse", 1.0 / epoch, 0, epoch)]))
    outbox.put(Write("end", "t1", status="KILLED"))
    assert outbox.close(60)
    run = client.get_run(outbox.run_ids["t1"])
    assert run.info.status == "KILLED" and run.data.tags["mlflow.parentRunId"] == parent
    history = client.get_metric_history(run.info.run_id, "val_rmse")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]


class CountingClient(MlflowClient):
    """The real client, counting the calls the outbox makes."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.calls: list[str] = []

    def create_run(self, *args, **kwargs):
        self.calls.append("create_run")
        return super().create_run(*args, **kwargs)

    def log_batch(self, *args, **kwargs):
        self.calls.append("log_batch")
        return super().log_batch(*args, **kwargs)

    def set_terminated(self, *args, **kwargs):
        self.calls.append("set_terminated")
        return super().set_terminated(*args, **kwargs)


def test_a_trials_start_epochs_and_end_queued_together_go_in_one_log_batch(sqlite_parent):
    client, experiment_id, parent = sqlite_parent
    counting = CountingClient(client.tracking_uri)
    outbox = Outbox(counting, experiment_id, parent, flush_interval=30.0)  # everything below lands in one wait
    for trial in ("a", "b"):
        outbox.put(Write("start", trial, params=[Param("train.lr", "0.01")], tags=[RunTag("x", "1")], run_name=trial))
    for epoch in (1, 2, 3):
        for trial in ("a", "b"):
            outbox.put(Write("log", trial, metrics=[Metric("val_rmse", 1.0 / epoch, 0, epoch)]))
    for trial in ("a", "b"):
        outbox.put(Write("end", trial, tags=[RunTag("lstm_ray.outcome", "completed")], status="FINISHED"))
    assert outbox.flush(10)  # flush() does not wait out the 30 s
    assert counting.calls == ["create_run", "log_batch", "set_terminated"] * 2
    for trial in ("a", "b"):
        run = client.get_run(outbox.run_ids[trial])
        assert run.info.status == "FINISHED" and run.data.params == {"train.lr": "0.01"}
        assert run.data.tags["x"] == "1" and run.data.tags["lstm_ray.outcome"] == "completed"
        history = client.get_metric_history(run.info.run_id, "val_rmse")
        assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    assert outbox.close(10)


def test_interleaved_logs_of_concurrent_trials_all_arrive_past_mlflows_batch_limits(sqlite_parent):
    client, experiment_id, parent = sqlite_parent
    outbox = Outbox(client, experiment_id, parent)
    for trial in ("a", "b"):
        outbox.put(Write("start", trial, params=[Param(f"p{i:03d}", str(i)) for i in range(150)], run_name=trial))
    for epoch in range(1, 1201):  # 2400 metrics in all, the two trials' results interleaved as Tune sends them
        for trial in ("a", "b"):
            outbox.put(Write("log", trial, metrics=[Metric("val_rmse", float(epoch), 0, epoch)]))
    assert outbox.close(120)
    for trial in ("a", "b"):
        run = client.get_run(outbox.run_ids[trial])
        assert len(run.data.params) == 150
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_rmse")]
        assert sorted(steps) == list(range(1, 1201))


def test_a_write_the_server_rejects_is_skipped_and_the_rest_still_arrive(sqlite_parent):
    client, experiment_id, parent = sqlite_parent
    outbox = Outbox(client, experiment_id, parent)
    outbox.put(Write("log", None, params=[Param("a", "1")]))
    outbox.put(Write("log", None, params=[Param("a", "2")]))  # MLflow refuses to change a logged param (400)
    outbox.put(Write("log", None, metrics=[Metric("after", 1.0, 0, 0)]))
    assert outbox.close(60)
    data = client.get_run(parent).data
    assert data.params["a"] == "1" and data.metrics["after"] == 1.0


def test_unreachable_server_spills_every_write_in_order_and_replay_keeps_it(tmp_path):
    client = connect(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    outbox = Outbox(client, "1", "parent-run", run_ids={"t0": "run-of-t0"})
    files = tmp_path / "report"
    files.mkdir()
    (files / "report.html").write_text("<html></html>")
    writes = [
        Write("log", "t0", metrics=[Metric("val_rmse", 0.5, 7, 1)]),
        Write("artifacts", None, source=str(files), artifact_path="report"),
        Write("end", None, status="FINISHED"),
    ]
    for write in writes:
        outbox.put(write)
    assert not outbox.close(timeout=1)
    folder = spill_folder(str(tmp_path / "results"), "parent-run")
    outbox.spill(folder)
    state = json.loads((tmp_path / "results" / "mlflow-outbox" / "parent-run" / SPILL_FILE).read_text())
    assert state["run_ids"] == {"t0": "run-of-t0"} and state["parent_run_id"] == "parent-run"
    assert [Write.from_json(w).kind for w in state["writes"]] == ["log", "artifacts", "end"]
    assert Write.from_json(state["writes"][0]).metrics == writes[0].metrics
    assert (tmp_path / "results" / "mlflow-outbox" / "parent-run" / "files" / "1" / "report.html").exists()
    assert replay_spilled(str(tmp_path / "results"), timeout=1) == []  # still down: the spill stays
    kept = json.loads((tmp_path / "results" / "mlflow-outbox" / "parent-run" / SPILL_FILE).read_text())
    assert [w["kind"] for w in kept["writes"]] == ["log", "artifacts", "end"]


def test_client_retries_are_short_unless_the_user_set_them(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    for name in CLIENT_DEFAULTS:
        if name != "MLFLOW_HTTP_REQUEST_TIMEOUT":
            monkeypatch.delenv(name, raising=False)
    connect("sqlite:///:memory:")
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 7


def test_params_are_flattened_and_long_values_cut_to_mlflows_limit(tiny_raw):
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    data = prepare_sweep_data(parse_config(tiny_raw))
    tiny_raw["data"]["features"] = [f"column_{i:05d}" for i in range(1000)]
    params = {p.key: p.value for p in sweep_params(parse_config(tiny_raw), data)}
    assert len(params["data.features"]) == 6000 and params["data.features"].endswith("...")
    assert params["model.hidden_size"] == "8"


@pytest.mark.parametrize(
    ("policy", "expected"), [("none", []), ("best", ["b"]), ("top_k", ["b", "a"]), ("all", ["b", "a", "c"])]
)
def test_checkpoint_policy_picks_the_best_scored_trials(policy, expected):
    board = pd.DataFrame({"trial_id": ["b", "a", "c", "failed"], "best_val_rmse": [0.1, 0.2, 0.3, np.nan]})
    assert checkpoint_trials(board, policy, 2, "val_rmse") == expected


def test_git_commit_names_the_checked_out_commit_and_is_empty_outside_git(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert git_commit(str(REPO)) == head and len(head) == 40
    assert git_commit(str(tmp_path)) == ""


# --- a real sweep: local Ray, SQLite MLflow -------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory, local_ray):
    from conftest import TINY

    from lstm_ray.sweep.tuning import run_sweep

    folder = tmp_path_factory.mktemp("tracked")
    raw = json.loads(json.dumps(TINY))
    raw["train"] |= {"max_epochs": 4, "batch_size": 64}
    raw["search"] = {
        "num_samples": 6,
        "grace_period": 1,  # ASHA rungs at epochs 1 and 2
        "n_initial_points": 2,
        "space": {"model.hidden_size": {"choice": [4, 8]}, "train.lr": {"loguniform": [1e-3, 3e-2]}},
    }
    raw["tracking"] = {
        "uri": f"sqlite:///{folder}/mlflow.db",
        "experiment": "tracked",
        "checkpoints": "top_k",
        "top_k": 2,
        "register_as": "tracked-forecaster",
    }
    raw["storage"] = {"path": str(folder / "results")}
    cfg = parse_config(raw)
    summary = run_sweep(cfg, config_text="name: tiny\n")
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    parent = next(r for r in runs if r.data.tags["lstm_ray.role"] == "sweep")
    children = [r for r in runs if r.data.tags["lstm_ray.role"] == "trial"]
    return cfg, summary, client, parent, children


@pytest.mark.slow
def test_children_are_tagged_with_node_rung_and_commit(tracked_sweep):
    *_, children = tracked_sweep
    assert len(children) == 6
    for child in children:
        tags = child.data.tags
        epochs = int(tags["lstm_ray.epochs"])
        assert tags["lstm_ray.rung_reached"] == str(max(r for r in (1, 2) if r <= epochs))
        assert "127.0.0.1" in tags["lstm_ray.node"]
        assert tags["mlflow.source.git.commit"] == git_commit()


@pytest.mark.slow
def test_each_trials_size_is_on_its_run_when_the_run_ends(tracked_sweep):
    from lstm_ray.config import apply_params
    from lstm_ray.data.dataset import prepare_sweep_data
    from lstm_ray.reports import trial_size

    cfg, _, client, _, children = tracked_sweep
    data = prepare_sweep_data(cfg)
    for child in children:
        params = {
            k: float(v) if k == "train.lr" else int(v) for k, v in child.data.params.items() if k in cfg.search.space
        }
        expected = trial_size(apply_params(cfg, params), data)
        for key, value in zip(("model_parameters", "train_windows"), expected, strict=True):
            (logged,) = client.get_metric_history(child.info.run_id, key)
            assert logged.value == value and logged.timestamp <= child.info.end_time


@pytest.mark.slow
def test_parent_holds_leaderboard_counts_and_report(tracked_sweep, tmp_path):
    _, summary, client, parent, children = tracked_sweep
    metrics = parent.data.metrics
    assert metrics["trials_total"] == 6 == sum(summary.counts.values())
    assert metrics["trial_compute_seconds"] > 0 and metrics["train_rows"] > 0
    board = pd.read_parquet(client.download_artifacts(parent.info.run_id, "leaderboard.parquet", str(tmp_path)))
    assert list(board["rank"]) == [1, 2, 3, 4, 5, 6]
    assert board["best_val_rmse"].is_monotonic_increasing
    assert set(board["run_id"]) == {c.info.run_id for c in children}
    assert board["best_val_rmse"].iloc[0] == pytest.approx(metrics["best_val_rmse"])
    tables = json.loads(parent.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "leaderboard.json", "type": "table"} in tables
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/learning_curves.png", "report/importance.png"} <= report
    assert parent.data.params["search.scheduler"] == "asha" and parent.data.params["tracking.checkpoints"] == "top_k"


@pytest.mark.slow
def test_checkpoints_go_only_to_the_top_k_trials(tracked_sweep, tmp_path):
    _, _, client, parent, children = tracked_sweep
    board = pd.read_parquet(client.download_artifacts(parent.info.run_id, "leaderboard.parquet", str(tmp_path)))
    with_checkpoint = {c.info.run_id for c in children if client.list_artifacts(c.info.run_id, "checkpoint")}
    assert with_checkpoint == set(board["run_id"].iloc[:2])


@pytest.mark.slow
def test_registered_model_forecasts_from_raw_rows_as_training_windows_do(tracked_sweep):
    from lstm_ray.data.dataset import prepare_dataset
    from lstm_ray.data.sources import read_table
    from lstm_ray.data.windows import WindowSetting

    cfg, summary, _, parent, _ = tracked_sweep
    assert parent.data.tags["lstm_ray.model_uri"] == summary.model_uri != ""
    mlflow.set_tracking_uri(cfg.tracking.uri)
    model = mlflow.pyfunc.load_model("models:/tracked-forecaster/1")
    lookback, horizon = cfg.data.lookback, cfg.data.horizon
    raw = read_table("builtin:co2").to_pandas().sort_values("date").reset_index(drop=True)
    # The last test window reads the `lookback` rows before the final `horizon` rows.
    forecast = model.predict(raw.iloc[: len(raw) - horizon])
    data = prepare_dataset(cfg.data, settings=[WindowSetting(lookback, horizon, 1)])
    window = data.windows(WindowSetting(lookback, horizon, 1))["test"].x[-1:]
    with torch.no_grad():
        expected = data.inverse_targets(model.unwrap_python_model().network(torch.as_tensor(window)).numpy())
    assert list(forecast.columns) == ["step", "co2"] and list(forecast["step"]) == [1, 2]
    np.testing.assert_allclose(forecast["co2"].to_numpy(), expected[0, :, 0], rtol=1e-5)
    with pytest.raises(Exception, match="lookback|rows"):
        model.predict(raw.iloc[:3])


@pytest.mark.slow
def test_the_winners_torch_module_loads_from_its_model_uri(tracked_sweep):
    from lstm_ray.train.transfer import load_network

    cfg, summary, *_ = tracked_sweep
    mlflow.set_tracking_uri(cfg.tracking.uri)
    for uri in (summary.model_uri, "models:/tracked-forecaster/1"):
        network = load_network(uri)
        with torch.no_grad():
            out = network(torch.zeros(3, cfg.data.lookback, 1))
        assert out.shape == (3, cfg.data.horizon, 1) and torch.isfinite(out).all()
