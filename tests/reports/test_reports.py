"""The sweep report: rungs and cut-offs as ASHA has them, importance, leaderboard, an offline HTML page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from ray.tune.schedulers import ASHAScheduler

from lstm_ray import cli
from lstm_ray.config import apply_params, parse_config
from lstm_ray.reports import SweepRecord, TrialRecord, importance, trial_size, write_report
from lstm_ray.search.fidelity import asha_rungs

SETTINGS = {"name": "synthetic", "metric": "val_rmse", "mode": "min", "scheduler": "asha", "grace_period": 1,
            "reduction_factor": 2, "max_epochs": 4}  # fmt: skip


def synthetic_record(scores: list[float], lrs: list[float], hidden: list[int], mode: str = "min") -> SweepRecord:
    """A sweep whose trial i ends at scores[i]; its curve falls towards it over four epochs."""
    trials = []
    for i, (score, lr, units) in enumerate(zip(scores, lrs, hidden, strict=True)):
        epochs = np.arange(1, 5)
        history = pd.DataFrame({"epoch": epochs, "val_rmse": score * (1 + 1.0 / epochs), "train_loss": 1.0 / epochs})
        params = {"train.lr": lr, "model.hidden_size": units}
        trials.append(TrialRecord(f"t{i:02d}", params, history, "completed", f"run{i}", 100.0 * units, 500.0))
    base = {"model.num_layers": 1, "model.cell": "lstm"}
    return SweepRecord(**(SETTINGS | {"mode": mode}), base=base, train_rows=600, trials=trials)


@pytest.mark.parametrize(("grace", "factor", "max_t"), [(1, 2, 4), (2, 2, 12), (1, 3, 27), (3, 2, 20), (5, 2, 4)])
def test_rungs_are_those_of_rays_asha(grace, factor, max_t):
    scheduler = ASHAScheduler(max_t=max_t, grace_period=min(grace, max_t), reduction_factor=factor)
    milestones = sorted(m for m, _ in scheduler._brackets[0]._rungs if m < max_t)
    assert asha_rungs("asha", grace, factor, max_t) == milestones
    assert asha_rungs("fifo", grace, factor, max_t) == []


@pytest.mark.parametrize("mode", ["min", "max"])
def test_rung_cutoff_keeps_one_in_reduction_factor(mode):
    record = synthetic_record([float(v) for v in range(1, 9)], [0.01] * 8, [8] * 8, mode=mode)
    at_rung = np.array([t.history["val_rmse"].iloc[0] for t in record.trials])  # epoch 1 is the first rung
    cutoff = record.cutoffs()[1]
    kept = at_rung < cutoff if mode == "min" else at_rung > cutoff
    assert kept.sum() == 4


def test_importance_finds_the_parameter_that_drives_the_score():
    rng = np.random.default_rng(0)
    lrs = list(np.geomspace(1e-4, 1e-1, 12))
    hidden = list(rng.choice([8, 16, 32], size=12))
    scores = [-np.log10(lr) + 0.05 * rng.standard_normal() for lr in lrs]
    shares = importance(synthetic_record(scores, lrs, hidden))
    assert shares["train.lr"] > 0.8 and shares["model.hidden_size"] < 0.3
    assert set(shares) == {"train.lr", "model.hidden_size"}


def test_leaderboard_ranks_best_first_and_unscored_trials_last():
    record = synthetic_record([3.0, 1.0, 2.0], [0.1, 0.01, 0.001], [8, 16, 8])
    record.trials[0].history["val_rmse"] = np.nan
    record.trials[0].outcome = "failed"
    board = record.leaderboard()
    assert list(board["trial_id"]) == ["t01", "t02", "t00"] and list(board["rank"]) == [1, 2, 3]
    assert board.loc[0, "best_val_rmse"] == pytest.approx(1.25) and board.loc[0, "rung_reached"] == 2
    assert list(board.columns[-3:]) == ["model.hidden_size", "train.lr", "run_id"]


def test_report_is_one_offline_html_page_with_every_figure(tmp_path):
    record = synthetic_record([1.0, 2.0, 3.0, 4.0], [0.1, 0.01, 0.001, 0.03], [8, 16, 32, 8])
    page = write_report(record, tmp_path / "report")
    text = page.read_text()
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") == 5
    for name in ("learning_curves", "parallel_coordinates", "importance", "capacity", "model_vs_data"):
        assert (tmp_path / "report" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "t00" in text and "Top trials" in text


def test_trial_size_counts_the_real_networks_parameters_and_windows(tiny_raw):
    from lstm_ray.data.dataset import prepare_dataset, window_settings
    from lstm_ray.data.windows import window_setting
    from lstm_ray.train.models import build_model

    tiny_raw["search"]["space"] = {"data.lookback": {"choice": [8, 16]}}
    cfg = parse_config(tiny_raw)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    for params in ({"data.lookback": 16, "model.hidden_size": 12, "model.num_layers": 2}, {"model.cell": "gru"}):
        trial = apply_params(cfg, params)
        network = build_model(trial.model, len(data.input_index), len(data.target_index), trial.data.horizon)
        expected = sum(p.numel() for p in network.parameters() if p.requires_grad)
        windows = len(data.windows(window_setting(trial))["train"])
        assert trial_size(trial, data) == (float(expected), float(windows))


def test_report_of_an_unknown_experiment_is_one_line_and_exit_2(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).create_experiment("present", artifact_location=str(tmp_path / "artifacts"))
    capsys.readouterr()  # MLflow's notes on creating the store
    code = cli.main(["report", "absent", "--tracking-uri", uri, "--storage", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: NAME: no MLflow experiment 'absent'") and "present" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_report_command_rebuilds_the_sweep_from_mlflow(tiny_raw, tmp_path, local_ray, capsys):
    import yaml

    from lstm_ray.sweep.tuning import run_sweep

    tiny_raw["train"]["max_epochs"] = 3
    tiny_raw["search"] = {
        "num_samples": 4,
        "grace_period": 1,
        "n_initial_points": 2,
        "space": {"model.hidden_size": {"choice": [4, 8]}, "train.lr": {"choice": [0.003, 0.03]}},
    }
    tiny_raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "reported", "report": False,
                            "checkpoints": "none"}  # fmt: skip
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_raw))
    summary = run_sweep(parse_config(tiny_raw), config_text=config.read_text())
    client = MlflowClient(tiny_raw["tracking"]["uri"])
    assert not client.list_artifacts(summary.parent_run_id, "report")  # tracking.report: false
    capsys.readouterr()  # the sweep's progress lines
    assert cli.main(["report", str(config), "--out", str(tmp_path / "report")]) == 0
    assert capsys.readouterr().out.strip() == f"Report: {tmp_path / 'report' / 'report.html'}"
    record = SweepRecord.from_mlflow(client, summary.parent_run_id)
    board = record.leaderboard()
    parent = client.get_run(summary.parent_run_id)
    assert len(board) == 4 and board["best_val_rmse"].iloc[0] == pytest.approx(parent.data.metrics["best_val_rmse"])
    assert record.rungs() == [1, 2] and record.train_rows == parent.data.metrics["train_rows"]
    assert all(board["model_parameters"] > 0) and all(board["train_windows"] > 0)
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(trial_id in html for trial_id in board["trial_id"])
    assert set(record.cutoffs()) == {1, 2}
