"""Data-parallel trials in real sweeps: each trial of resources.workers 2 trains as two gloo ranks on this machine's
two CPUs, through Ray Tune with ASHA, MLflow and a resume. No mocks."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from cli_runs import cli, finish
from mlflow.tracking import MlflowClient
from resume_runs import wait_for_a_trial_result
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder

from lstm_ray.config import parse_config
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.train.transfer import CHECKPOINT_FILE

pytestmark = pytest.mark.slow

RANK_MODULE = "lstm_ray.train.distributed"  # the command line of every rank above 0


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process this user can read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def ranks_below(pid: int) -> list[int]:
    """Rank processes among the descendants of `pid` (the in-process Ray's raylet and workers are its children)."""
    table = processes()
    below, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (parent, _) in table.items() if parent in frontier} - below
        below |= frontier
    return [p for p in below if RANK_MODULE in table[p][1]]


def ranks_marked(marker: str) -> list[int]:
    """Rank processes whose environment carries `marker` (a sweep's ranks outlive its process tree if orphaned)."""
    marked = []
    for pid, (_, cmdline) in processes().items():
        if RANK_MODULE in cmdline:
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    marked.append(pid)
            except OSError:
                continue
    return marked


def rank_streams(trial_folder: Path) -> int:
    """How many ranks trained the trial: its last checkpoint keeps each rank's dropout stream."""
    last = sorted(trial_folder.glob("checkpoint_*"))[-1]
    state = torch.load(last / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    return len(state["rng"].get("ranks", [state["rng"]["torch"]]))


def two_worker_sweep(raw: dict, tracking_uri: str, storage: str) -> dict:
    raw["resources"] = {"cpu": 2, "workers": 2}
    raw["train"] |= {"batch_size": 16, "lr": 0.01}
    raw["tracking"] = {"uri": tracking_uri, "experiment": "data-parallel"}
    raw["storage"] = {"path": storage}
    return raw


@pytest.fixture
def asha_sweep(tiny_raw, tmp_path):
    raw = two_worker_sweep(tiny_raw, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "results"))
    raw["train"]["max_epochs"] = 3
    raw["search"] = {
        "algorithm": "grid",  # trials in this order, one at a time (each takes both CPUs)
        "num_samples": 1,
        "scheduler": "asha",
        "grace_period": 1,  # rungs at epochs 1 and 2
        "reduction_factor": 2,
        # The first trial sets each rung's bar; the next two learn 1000 times slower and fall below it.
        "space": {"train.lr": {"grid": [0.01, 0.00001, 0.00002]}},
    }
    return parse_config(raw)


def test_asha_stops_a_two_worker_trial_and_mlflow_has_every_epoch_of_each(asha_sweep, local_ray):
    summary = run_sweep(asha_sweep, config_text="name: tiny\n")
    assert ranks_below(os.getpid()) == []  # no rank outlived its trial, stopped or finished
    client = MlflowClient(asha_sweep.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("data-parallel").experiment_id])
    children = [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]
    assert len(children) == 3 and not summary.counts.get("failed"), summary.counts
    stopped = [r for r in children if r.data.tags["lstm_ray.outcome"] == "stopped_early"]
    assert stopped and all(int(r.data.tags["lstm_ray.epochs"]) < 3 for r in stopped), "ASHA stopped no trial"
    for child in children:
        epochs = int(child.data.tags["lstm_ray.epochs"])
        for metric in ("train_loss", "val_rmse"):
            history = client.get_metric_history(child.info.run_id, metric)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1)), (metric, child.data.tags)
    trial_folders = [p for p in Path(summary.storage_path).iterdir() if p.is_dir() and any(p.glob("checkpoint_*"))]
    assert len(trial_folders) == 3 and all(rank_streams(folder) == 2 for folder in trial_folders)


def test_an_interrupted_two_worker_trial_resumes_from_its_checkpoint(tiny_raw, tmp_path):
    raw = two_worker_sweep(tiny_raw, "sqlite:///mlflow.db", "results")
    raw["train"]["max_epochs"] = 12  # still training when the Ctrl-C lands after its first epoch
    raw["search"] = {"algorithm": "random", "num_samples": 1, "space": {}}
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(raw))
    marker = f"LSTM_RAY_TEST_SWEEP={uuid.uuid4().hex}"
    env = os.environ | dict([marker.split("=")])
    first = cli("tune", str(sweep_file), cwd=tmp_path, env=env)
    try:
        wait_for_a_trial_result(tmp_path / "results", first)
        assert ranks_marked(marker), "the trial trains without its second rank"
        os.kill(first.pid, signal.SIGINT)
        first.wait(timeout=300)
        assert wait_until(lambda: not ranks_marked(marker)), "a rank outlived the interrupted sweep"
        out = finish(first)
    finally:
        finish(first)
    assert first.returncode == 130, out[-3000:]
    (folder,) = (tmp_path / "results").iterdir()
    resumed = cli("resume", str(folder), cwd=tmp_path, env=env)
    out = finish(resumed)
    assert resumed.returncode == 0 and "0 failed)" in out, out[-3000:]
    truth = reported(sweep_folder(out))
    (trial,) = truth.values()
    # Continued from a checkpoint, not from epoch 1: an epoch reported after Tune's last snapshot before the
    # Ctrl-C is trained again (Ray Tune's own resume), and MLflow keeps it once.
    epochs = [epoch for epoch, _ in trial["train_loss"]]
    assert epochs.count(1) == 1 and sorted(set(epochs)) == list(range(1, 13)) and epochs[-1] == 12, epochs
    history = logged(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), parent_run_id(out), truth)
    assert epochs_once_each(history) and len(history[next(iter(truth))]["train_loss"]) == 12
    (trial_folder,) = [p for p in sweep_folder(out).iterdir() if p.is_dir()]
    assert rank_streams(trial_folder) == 2
    assert not ranks_marked(marker)


def wait_until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()
