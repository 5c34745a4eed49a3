"""Top-k re-evaluation with new seeds, and the manifest that lets the winner be reproduced elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tune_runs import tiny

from lstm_ray.config import apply_params, parse_config
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.sweep.manifest import build_manifest, fingerprint
from lstm_ray.sweep.tuning import run_sweep

SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"choice": [4, 8]}}


def test_the_data_fingerprint_changes_with_the_data(tiny_config):
    same = fingerprint(prepare_dataset(tiny_config.data)) == fingerprint(prepare_dataset(tiny_config.data))
    other = apply_params(tiny_config, {"data.val_fraction": 0.2})
    assert same and fingerprint(prepare_dataset(other.data)) != fingerprint(prepare_dataset(tiny_config.data))


def test_the_manifest_holds_a_runnable_config_of_the_winner(tiny_config):
    manifest = build_manifest(tiny_config, prepare_dataset(tiny_config.data), {"model.hidden_size": 16})
    assert {"torch", "ray", "mlflow", "numpy"} <= {k for k, v in manifest["packages"].items() if v}
    assert manifest["code"]["lstm_ray"] and manifest["seeds"] == {"search.seed": 0, "train.seed": 0}
    winner = parse_config(json.loads(json.dumps(manifest["winner_config"])))
    assert winner.model.hidden_size == 16 and winner.search.space == {} and winner.search.num_samples == 1


@pytest.mark.slow
def test_reevaluation_retrains_the_best_with_new_seeds_and_ranks_by_the_mean(tiny_raw, tmp_path, local_ray):
    cfg = tiny(
        tiny_raw,
        tmp_path,
        algorithm="random",
        scheduler="fifo",
        space=SPACE,
        num_samples=3,
        reevaluate={"top_k": 2, "seeds": 2},
    )
    cfg.train.max_epochs = 2
    summary = run_sweep(cfg, config_text="reevaluate")
    reevaluation = summary.reevaluation
    assert reevaluation.seeds == [1, 2] and len(reevaluation.candidates) == 2
    assert all(len(c.values) == 2 for c in reevaluation.candidates)
    assert reevaluation.candidates[0].mean <= reevaluation.candidates[1].mean
    winner = reevaluation.candidates[0]
    assert {k: v for k, v in summary.best_params.items() if k != "train.seed"} == winner.params
    assert summary.best_params["train.seed"] in (1, 2)

    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(summary.parent_run_id)
    runs = client.search_runs([parent.info.experiment_id])
    reruns = [r for r in runs if r.data.tags.get("lstm_ray.phase") == "reevaluation"]
    assert len(reruns) == 4 and {r.data.params["train.seed"] for r in reruns} == {"1", "2"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in reruns)
    assert parent.data.metrics["reevaluated_val_rmse_mean"] == pytest.approx(winner.mean)
    assert parent.data.metrics["trials_total"] == 3  # the sweep's own trials; re-runs are counted apart

    path = client.download_artifacts(parent.info.run_id, "manifest.json", str(tmp_path))
    manifest = json.loads(Path(path).read_text())
    assert manifest["seeds"]["reevaluation"] == [1, 2] and len(manifest["reevaluation"]) == 2
    assert len(manifest["data"]["fingerprint"]) == 64 and manifest["packages"]["ray"]
    assert parse_config(manifest["winner_config"]).train.seed == summary.best_params["train.seed"]
