"""The resumable sweep that the resume tests (tests/sweep/test_resume.py) and the chaos suite interrupt, and what a
resume must leave in MLflow."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import yaml
from cli_runs import cli, finish
from conftest import TINY
from mlflow.tracking import MlflowClient

RESUMED_TRIALS = 6


def resumable_sweep(path, tracking_uri: str, storage: str, keep_checkpoints: int | None = 5) -> None:
    """Write the sweep these tests interrupt to `path`: 6 trials of HyperOpt + ASHA, 4 epochs each.

    A test that watches Tune's results in `storage` passes keep_checkpoints=1: every checkpoint then forces a
    snapshot of the experiment there, instead of one about every 10 s."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    raw["train"] |= {"max_epochs": 4, "batch_size": 8}  # slow enough that a Ctrl-C lands while trials run
    raw["search"] = {
        "algorithm": "hyperopt",
        "scheduler": "asha",
        "grace_period": 1,
        "n_initial_points": 2,
        "num_samples": RESUMED_TRIALS,
        "space": {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"choice": [4, 8]}},
    }
    raw["tracking"] = {"uri": tracking_uri, "experiment": "resume"}
    raw["storage"] = {"path": storage, "keep_checkpoints": keep_checkpoints}
    path.write_text(yaml.safe_dump(raw))


def sweep_runs(client: MlflowClient) -> tuple[list, list]:
    """(parent runs, child runs) of the experiment `resumable_sweep` logs to."""
    experiment = client.get_experiment_by_name("resume")
    if experiment is None:
        return [], []
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lstm_ray.role") == "sweep"]
    return parents, [r for r in runs if r.data.tags.get("lstm_ray.role") == "trial"]


def assert_resumed_into_the_same_runs(client: MlflowClient, out: str) -> None:
    parents, children = sweep_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", out[-3000:]
    trial_ids = Counter(r.data.tags["lstm_ray.trial_id"] for r in children)
    assert len(children) == RESUMED_TRIALS and max(trial_ids.values()) == 1, trial_ids  # no duplicate runs
    open_runs = [  # a trial the interrupt ended KILLED (lstm_ray.resumes) must end as a new sweep's trial does
        (r.data.tags["lstm_ray.trial_id"], r.info.status, r.data.tags)
        for r in children
        if r.info.status not in ("FINISHED", "FAILED") or "lstm_ray.resumes" in r.data.tags
    ]
    assert not open_runs, f"{open_runs}\n{out[-6000:]}"
    assert parents[0].data.metrics["trials_total"] == RESUMED_TRIALS


def wait_for_a_trial_result(results: Path, proc: subprocess.Popen) -> None:
    """Until some trial under `results` has written a result (the sweep is running trials), or fail."""
    for _ in range(600):
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        if any(f.stat().st_size for f in results.glob("*/*/result.json")):
            return
        time.sleep(0.5)
    raise AssertionError("no trial reported within 5 minutes")


def interrupted_after_a_result(sweep_file: Path, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`lstm-ray tune sweep_file` run in `cwd` (storage `results`), Ctrl-C once a trial has reported: the process
    and its output."""
    first = cli("tune", str(sweep_file), cwd=cwd)
    try:
        wait_for_a_trial_result(cwd / "results", first)
        os.kill(first.pid, signal.SIGINT)
        out = finish(first)
    finally:
        finish(first)
    return first, out
