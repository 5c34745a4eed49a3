"""A real local multi-node Ray cluster for the cluster tests (scripts/local_cluster.py), and what they share:
a tiny sweep to submit, waiting, and reading the sweep's MLflow runs back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml
from conftest import load_local_cluster

VENV_BIN = str(Path(sys.executable).parent)  # the nodes' `python` must be the one with lstm-ray's dependencies

local_cluster = load_local_cluster()


def start(state_dir: Path, **options):
    """A local cluster whose nodes find the venv's python first on PATH, as a real cluster's activated env."""
    return local_cluster.start_cluster(state_dir, extra_env={"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}, **options)


def stop(handle) -> None:
    """Stop every node, then make sure no job driver (Ray runs each in a session of its own) outlives them."""
    drivers = [int(j["driver_info"]["pid"]) for j in dashboard_get(handle, "/api/jobs/") if j.get("driver_info")]
    local_cluster.stop_cluster(handle, remove_temp_root=True)
    # Ray's per-job watcher kills a driver within a second of its supervisor's death.
    assert wait_for(lambda: all(gone(pid) for pid in drivers), timeout=20), f"job drivers still alive: {drivers}"


@contextlib.contextmanager
def running_cluster(state_dir: Path, workers: int) -> Iterator:
    """Head (no CPUs, no GPUs) + `workers` workers with 2 CPUs and 1 fake GPU each, stopped on exit."""
    handle = start(state_dir, workers=workers, gpus_per_worker=1, cpus_per_worker=2)
    try:
        yield handle
    finally:
        stop(handle)


def lstm_ray(handle, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lstm_ray.cli", *args],
        env=env or handle.client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_sweep(folder: Path, **changes) -> Path:
    """A 4-trial sweep of tiny models on half a GPU each, MLflow in a SQLite file, results in `folder`."""
    raw = {
        "name": "tiny-cluster",
        "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 8, "horizon": 2},
        "model": {"cell": "lstm", "hidden_size": 8, "num_layers": 1},
        "train": {"max_epochs": 2, "batch_size": 128, "lr": 0.01},
        "search": {
            "algorithm": "random",
            "scheduler": "fifo",
            "num_samples": 4,
            "space": {"model.hidden_size": {"choice": [4, 8]}},
        },
        "resources": {"cpu": 1, "gpu": 0.5},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "storage": {"path": str(folder / "results")},
    }
    for section, values in changes.items():
        raw[section] = raw[section] | values
    path = folder / "tiny-cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wait_for(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def dashboard_get(handle, path: str):
    request = urllib.request.Request(
        f"{handle.dashboard_url}{path}",
        headers={"Authorization": f"Bearer {Path(handle.auth_token_path).read_text().strip()}"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


def mlflow_runs(folder: Path, experiment: str = "tiny-cluster"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []
