"""search.pick in a real small multi-objective sweep (Ray, MLflow, the model registry): the rule's front member,
not the best val_rmse, is the model logged on the parent run and registered as tracking.register_as; a rule no
member meets keeps the default winner and registers nothing; the report read back from MLflow draws the front."""

from __future__ import annotations

import copy
import math

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from lstm_ray.cli import print_summary
from lstm_ray.config import parse_config
from lstm_ray.reports import SweepRecord, report_sweep
from lstm_ray.sweep.tuning import run_sweep

OBJECTIVES = [{"metric": "val_rmse", "mode": "min"}, {"metric": "model_parameters", "mode": "min"}]


def _config(tiny_raw, tmp_path, pick: str, name: str, samples: int):
    raw = copy.deepcopy(tiny_raw)
    raw["train"] |= {"max_epochs": 3, "batch_size": 64}
    raw["search"] = {
        "algorithm": "random",
        "scheduler": "fifo",
        "num_samples": samples,
        "seed": 3,
        "objectives": OBJECTIVES,
        "pick": pick,
        "space": {"model.hidden_size": {"choice": [2, 8, 32]}, "train.lr": {"loguniform": [3.0e-3, 3.0e-2]}},
    }
    raw["storage"] = {"path": str(tmp_path / "results")}
    raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": name, "register_as": name}
    return parse_config(raw)


def _network_parameters(uri: str) -> float:
    network = mlflow.pyfunc.load_model(uri).unwrap_python_model().network
    return float(sum(p.numel() for p in network.parameters() if p.requires_grad))


@pytest.mark.slow
def test_the_picked_front_member_is_the_registered_model(local_ray, tmp_path, tiny_raw, capsys):
    cfg = _config(tiny_raw, tmp_path, "lowest model_parameters", "picked", samples=6)
    summary = run_sweep(cfg, config_text="pick")
    front = {row["trial_id"]: row for row in summary.pareto}
    smallest = min(front.values(), key=lambda row: row["model_parameters"])
    default = summary.pareto[0]  # the front's best val_rmse: the winner without search.pick
    assert len(front) >= 2 and smallest["trial_id"] != default["trial_id"]
    assert summary.best_value == pytest.approx(smallest["val_rmse"])
    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(summary.parent_run_id)
    assert parent.data.tags["lstm_ray.best_trial_id"] == smallest["trial_id"]
    (version,) = client.search_model_versions("name='picked'")
    assert version.run_id == summary.parent_run_id  # the best model logged on the parent run ...
    assert _network_parameters(f"models:/picked/{version.version}") == smallest["model_parameters"]  # ... is the pick
    capsys.readouterr()
    print_summary(summary, cfg.tracking.uri)
    out = capsys.readouterr().out
    assert f"Picked trial {smallest['trial_id']} from the Pareto front by search.pick 'lowest model_parameters'" in out
    # The report read back from MLflow draws the same front.
    page = report_sweep("picked", tracking_uri=cfg.tracking.uri, out=tmp_path / "report")
    table = SweepRecord.from_mlflow(client, summary.parent_run_id).pareto()
    assert set(table.loc[table["on_front"], "trial_id"]) == set(front)
    assert "<h2>Pareto front</h2>" in page.read_text() and (tmp_path / "report" / "pareto_front.png").is_file()


@pytest.mark.slow
def test_a_rule_no_member_meets_keeps_the_default_winner_and_registers_nothing(local_ray, tmp_path, tiny_raw, capsys):
    cfg = _config(tiny_raw, tmp_path, "lowest val_rmse where model_parameters < 1", "unmet", samples=2)
    summary = run_sweep(cfg, config_text="pick")
    default = summary.pareto[0]
    assert summary.best_value == pytest.approx(default["val_rmse"]) and math.isfinite(summary.best_value)
    client = MlflowClient(cfg.tracking.uri)
    assert not client.search_model_versions("name='unmet'")
    assert summary.model_uri  # the default winner is still logged on the parent run
    capsys.readouterr()
    print_summary(summary, cfg.tracking.uri)
    err = capsys.readouterr().err.splitlines()
    (warning,) = [line for line in err if line.startswith("warning: search.pick")]
    closest = min(summary.pareto, key=lambda row: row["model_parameters"])["trial_id"]
    assert "'lowest val_rmse where model_parameters < 1': no member of the Pareto front meets it" in warning
    assert f"the closest is trial {closest}" in warning and "nothing is registered as 'unmet'" in warning
