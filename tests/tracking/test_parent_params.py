"""The parent run's params and git tag: the config as the sweep ran it (columns a bundled set resolved, only the
task's keys) and the commit the manifest names, wherever the sweep is started from."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from mlflow.tracking import MlflowClient

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.tracking.sweep import FORECAST_ONLY, git_commit, sweep_params

VOWELS = {"source": "builtin:japanese_vowels", "task": "classify"}
CLASSIFY_SEARCH = {"algorithm": "random", "scheduler": "fifo", "num_samples": 1, "metric": "val_accuracy"}


def params_of(raw: dict) -> dict[str, str]:
    cfg = parse_config(raw)
    return {p.key: p.value for p in sweep_params(cfg, prepare_sweep_data(cfg))}


def test_a_bundled_sets_defaults_are_logged_as_the_columns_it_resolved(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:co2", "lookback": 8}
    params = params_of(tiny_raw)
    assert params["data.target"] == "co2" and params["data.time_column"] == "date"
    assert params["data.features"] == "['co2']" and params["data.id_column"] == "None"
    assert params["data.season_length"] == "52"  # weekly rows: a season of a year
    assert params["data.lookback"] == "8" and params["model.highway"] == "0"


def test_a_classify_sweep_logs_its_label_and_inputs_and_no_forecast_keys(tiny_raw):
    tiny_raw["data"] = dict(VOWELS)
    tiny_raw["search"] = dict(CLASSIFY_SEARCH)
    params = params_of(tiny_raw)
    assert not set(FORECAST_ONLY) & set(params)
    assert params["data.target"] == "label" and params["data.id_column"] == "sequence_id"
    assert params["data.time_column"] == "step" and params["data.features"] == str([f"lpc{i}" for i in range(1, 13)])
    assert params["data.task"] == "classify" and params["model.hidden_size"] == "8"


@pytest.mark.slow
def test_a_sweep_started_outside_git_tags_the_commit_its_manifest_names(tiny_raw, tmp_path, monkeypatch, local_ray):
    from lstm_ray.sweep.tuning import run_sweep

    monkeypatch.chdir(tmp_path)  # no git checkout here: the commit is the lstm_ray package's
    tiny_raw["data"] = dict(VOWELS)
    tiny_raw["train"] |= {"max_epochs": 1}
    tiny_raw["search"] = dict(CLASSIFY_SEARCH)
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "outside-git", "report": False}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    summary = run_sweep(parse_config(tiny_raw), config_text="name: tiny\n")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(summary.parent_run_id)
    manifest = json.loads(open(client.download_artifacts(parent.info.run_id, "manifest.json", str(tmp_path))).read())
    (child,) = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    commit = manifest["code"]["git_commit"]
    assert commit == git_commit(REPO) and len(commit) == 40
    assert parent.data.tags["mlflow.source.git.commit"] == commit == child.data.tags["mlflow.source.git.commit"]
    assert parent.data.params["data.target"] == "label" and "data.lookback" not in parent.data.params
