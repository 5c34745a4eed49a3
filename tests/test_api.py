"""The Python API (lstm_ray/api.py) end to end: real Ray, a real MLflow SQLite store, no mocks."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from mlflow.tracking import MlflowClient
from resume_runs import RESUMED_TRIALS, assert_resumed_into_the_same_runs, resumable_sweep

import lstm_ray
from lstm_ray.api import LiveLine, _config_and_text, in_notebook, progress_stream, with_bar
from lstm_ray.errors import ConfigError

QUICKSTART = REPO / "configs" / "quickstart.yaml"


def test_the_public_names_are_listed_and_importing_the_package_loads_neither_ray_nor_torch():
    assert {"load_config", "tune", "resume", "submit", "load_model", "SweepResult"} <= set(lstm_ray.__all__)
    code = "import sys, lstm_ray; print(sorted(m for m in ('ray', 'torch', 'mlflow') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_load_config_reads_a_file_with_overrides():
    cfg = lstm_ray.load_config(QUICKSTART, ["search.num_samples=4", "train.max_epochs=3"])
    assert (cfg.name, cfg.search.num_samples, cfg.train.max_epochs) == ("quickstart", 4, 3)


def test_load_config_takes_a_dict_and_leaves_it_unchanged(tiny_raw):
    cfg = lstm_ray.load_config(tiny_raw, ["model.hidden_size=16"])
    assert cfg.model.hidden_size == 16 and tiny_raw["model"]["hidden_size"] == 8


@pytest.mark.parametrize(
    ("override", "key"),
    [("model.dropout=1.5", "model.dropout"), ("search.algorithm=bayes", "search.algorithm"), ("nonsense", "--set")],
)
def test_load_config_errors_name_the_key(tiny_raw, override, key):
    with pytest.raises(ConfigError) as caught:
        lstm_ray.load_config(tiny_raw, [override])
    assert caught.value.key == key


def test_a_dict_or_a_config_is_logged_as_yaml_that_loads_back_to_the_same_config(tiny_raw):
    cfg, text = _config_and_text(tiny_raw, ["train.max_epochs=5"])
    assert lstm_ray.load_config(yaml.safe_load(text)) == cfg and cfg.train.max_epochs == 5
    assert _config_and_text(cfg, None) == (cfg, text)
    with pytest.raises(ConfigError, match="overrides"):
        _config_and_text(cfg, ["train.max_epochs=3"])


def test_a_bad_data_source_fails_before_ray_is_imported(tmp_path):
    code = (
        "import sys, lstm_ray\n"
        "try:\n    lstm_ray.tune({'name': 'x', 'data': {'source': 'missing.csv', 'target': 'y'}})\n"
        "except lstm_ray.ConfigError as err:\n    print(err.key, 'ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.strip() == "data.source False", done.stderr


def test_a_live_line_shows_only_its_latest_complete_line():
    shown = []
    line = LiveLine(shown.append)
    line.write("[00:01] 0/4 trials done\n[00:02] 1/4 tri")
    line.write("als done\n\n")
    assert shown == ["[00:01] 0/4 trials done", "[00:02] 1/4 trials done"]


def test_the_notebook_bar_fills_with_trials_done():
    assert with_bar("[00:09] 2/4 trials done: ...").startswith("█" * 10 + "░" * 10 + " [00:09] 2/4")
    assert with_bar("Sweep x: MLflow parent run abc") == "Sweep x: MLflow parent run abc"


def test_outside_jupyter_progress_goes_to_stdout_and_progress_false_prints_nothing(capsys):
    assert not in_notebook()
    with progress_stream(True) as stream:
        assert stream is None
    with progress_stream(False) as stream:
        print("hidden")
        stream.write("hidden too\n")
    assert capsys.readouterr().out == ""


@pytest.fixture
def api_sweep(tiny_raw, tmp_path):
    tiny_raw["search"] = {"num_samples": 3, "space": {"model.hidden_size": {"choice": [4, 8]}}}
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "api-test"}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    return tiny_raw


@pytest.mark.slow
def test_tune_returns_what_mlflow_holds_and_the_model_predicts_raw_rows(api_sweep, local_ray, capsys):
    result = lstm_ray.tune(api_sweep, progress=False)
    assert capsys.readouterr().out == ""  # progress=False: not even the sweep's first line
    parent = MlflowClient(result.tracking_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert math.isclose(metrics["best_val_rmse"], result.best_value) and result.metric == "val_rmse"
    assert all(math.isclose(metrics[key], value) for key, value in result.test_metrics.items())
    assert result.baselines and all(math.isclose(metrics[f"baseline.{k}"], v) for k, v in result.baselines.items())
    assert set(result.baseline_ratios) <= set(metrics)
    board = result.leaderboard
    assert len(board) == 3 and list(board["rank"]) == [1, 2, 3]
    assert board.loc[0, "best_val_rmse"] == board["best_val_rmse"].min()
    assert set(result.best_params) == {"model.hidden_size"} and Path(result.storage_path).is_dir()
    model = lstm_ray.load_model(result.model_uri, result.tracking_uri)
    rows = pd.read_csv(REPO / "lstm_ray" / "data" / "sets" / "co2.csv", parse_dates=["date"]).tail(40)
    predicted = model.predict(rows)
    assert len(predicted) and predicted.select_dtypes("number").notna().all().all()


def interrupt_after_a_trial_ends(database: Path) -> threading.Thread:
    """A thread that sends this process SIGINT (Ctrl-C) once a trial's MLflow run has ended."""
    ended = (
        "SELECT COUNT(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid WHERE tags.key = 'lstm_ray.role' "
        "AND tags.value = 'trial' AND runs.status != 'RUNNING'"
    )

    def watch() -> None:
        for _ in range(1200):
            try:  # read-only SQL: a client here would race the sweep at creating the tables
                with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                    if db.execute(ended).fetchone()[0]:
                        os.kill(os.getpid(), signal.SIGINT)
                        return
            except sqlite3.OperationalError:  # no database or no tables yet
                pass
            time.sleep(0.25)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_ctrl_c_saves_a_sweep_and_resume_returns_its_result(tmp_path, local_ray, monkeypatch):
    monkeypatch.chdir(tmp_path)  # resume returns to the folder the sweep started in; this one is restored after
    sweep_file = tmp_path / "tiny.yaml"
    resumable_sweep(sweep_file, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "results"))
    watcher = interrupt_after_a_trial_ends(tmp_path / "mlflow.db")
    with pytest.raises(KeyboardInterrupt, match="lstm-ray resume"):
        lstm_ray.tune(sweep_file, progress=False)
    watcher.join()
    (folder,) = (tmp_path / "results").iterdir()
    result = lstm_ray.resume(str(folder), progress=False)
    client = MlflowClient(result.tracking_uri)
    assert_resumed_into_the_same_runs(client, "")
    assert len(result.leaderboard) == RESUMED_TRIALS and result.storage_path.endswith(folder.name)
    assert client.get_run(result.parent_run_id).data.tags["lstm_ray.role"] == "sweep"
