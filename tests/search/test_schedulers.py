"""Schedulers: each one in a real Ray run; PBT changes values mid-trial, training follows and MLflow records it;
the checkpoints a trial keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from tune_runs import run, tiny

from lstm_ray.config import apply_params
from lstm_ray.config.space import parse_distribution
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.search.schedulers import KeepInSpace
from lstm_ray.sweep.trainable import build_trainer, load_checkpoint_state
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.train.training import carry_hyperparameters

# Learning rate 1e-4 learns almost nothing in 4 epochs: a scheduler that works stops those trials.
SLOW_AND_FAST = {"train.lr": {"choice": [1.0e-4, 3.0e-2]}, "model.hidden_size": {"choice": [4, 8]}}


def test_pbt_perturbations_stay_inside_the_searched_ranges():
    space = {
        "train.lr": parse_distribution("lr", {"loguniform": [1.0e-3, 1.0e-2]}),
        "train.batch_size": parse_distribution("b", {"randint": [16, 65]}),
        "model.dropout": parse_distribution("d", {"quniform": [0.0, 0.5, 0.1]}),
    }
    clipped = KeepInSpace(space)({"train.lr": 0.012, "train.batch_size": 77.6, "model.dropout": 0.23, "x": 1})
    assert clipped == {"train.lr": 0.01, "train.batch_size": 64, "model.dropout": pytest.approx(0.2), "x": 1}


def test_a_copied_checkpoint_follows_the_new_optimiser_values(tiny_config):
    data = prepare_dataset(tiny_config.data)
    old = apply_params(tiny_config, {"train.lr": 0.01})
    donor = build_trainer(old, data, torch.device("cpu"))
    donor.run_epoch()
    state = donor.state() | {"config": old.to_dict()}  # as the trainable saves it
    new = apply_params(tiny_config, {"train.lr": 0.02, "train.weight_decay": 0.1})
    trainer = build_trainer(new, data, torch.device("cpu"))
    trainer.load_state(carry_hyperparameters(state, new))
    metrics = trainer.run_epoch()
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.1
    assert metrics["epoch"] == 2 and metrics["train_lr"] == pytest.approx(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median"])
def test_each_early_stopping_scheduler_stops_the_slow_learners(tiny_raw, tmp_path, local_ray, scheduler):
    cfg = tiny(tiny_raw, tmp_path, algorithm="random", scheduler=scheduler, space=SLOW_AND_FAST, num_samples=8)
    cfg.train.max_epochs = 4
    results, recorder = run(cfg)
    assert results.num_errors == 0 and len(recorder.epochs) == 8
    stopped = [t for t, epochs in recorder.epochs.items() if epochs < 4]
    assert stopped and any(epochs == 4 for epochs in recorder.epochs.values())
    assert any(recorder.configs[t]["train.lr"] == 1.0e-4 for t in stopped)


@pytest.mark.slow
def test_pbt_changes_values_mid_trial_and_mlflow_records_the_change(tiny_raw, tmp_path, local_ray):
    cfg = tiny(
        tiny_raw,
        tmp_path,
        algorithm="random",
        scheduler="pbt",
        perturbation_interval=2,
        num_samples=4,
        space={"train.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
    )
    # PBT only copies from a trial still running: long enough trials overlap even when one worker starts late.
    cfg.train.max_epochs = 12
    cfg.train.batch_size = 16
    summary = run_sweep(cfg, config_text="pbt")
    client = MlflowClient(cfg.tracking.uri)
    children = [
        r
        for r in client.search_runs([client.get_run(summary.parent_run_id).info.experiment_id])
        if r.data.tags.get("mlflow.parentRunId") == summary.parent_run_id
    ]
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    changed = [r for r in children if "train.lr" in r.data.metrics]
    assert changed, "PBT changed no trial's learning rate"
    for run_ in changed:
        (change,) = client.get_metric_history(run_.info.run_id, "train.lr")[:1]
        assert float(run_.data.params["train.lr"]) != change.value  # the param keeps the starting value
        # An exploited trial goes on from its donor's checkpoint, so it may report an epoch number again: the
        # history can hold that epoch twice, trained with the old value and with the new one.
        trained = [(m.step, m.value) for m in client.get_metric_history(run_.info.run_id, "train_lr")]
        assert (change.step, pytest.approx(change.value)) in trained  # and training used the new one


@pytest.mark.slow
@pytest.mark.parametrize("keep", [2, None])
def test_a_trial_keeps_its_best_checkpoints_and_its_latest(tiny_raw, tmp_path, local_ray, keep):
    cfg = tiny(tiny_raw, tmp_path, algorithm="random", scheduler="fifo", num_samples=1)
    cfg.train.max_epochs = 6
    cfg.storage.keep_checkpoints = keep
    results, _ = run(cfg)
    result = results[0]
    history = result.metrics_dataframe.set_index("epoch")["val_rmse"]
    kept = sorted(int(metrics["epoch"]) for _, metrics in result.best_checkpoints)
    on_disk = sorted(Path(result.path).glob("checkpoint_*"))
    assert len(on_disk) == len(kept)
    if keep is None:
        assert kept == list(range(1, 7))
    else:
        best = sorted(history.nsmallest(keep).index)
        assert kept == sorted(set(best) | {6})  # the best `keep` epochs, and the latest for a restore
    state = load_checkpoint_state(result.get_best_checkpoint("val_rmse", "min"))
    assert state["epoch"] == history.idxmin()
