"""What a sweep's trials reported (Ray Tune's result.json files) and what MLflow holds of it: the two must match.

    assert logged(MlflowClient(uri), parent_run_id) == reported(experiment_path)

Both are trial id -> metric -> [(epoch, value), ...] sorted by epoch, lists rather than sets so that an epoch
logged twice shows.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from lstm_ray.tracking.runs import connect

History = dict[str, dict[str, list[tuple[int, float]]]]
WAIT_LIMIT_S = 600  # a guard against a sweep that never logs, not a timing assertion


def sweep_folder(out: str) -> Path:
    """The sweep's folder (Ray Tune's experiment), from the summary the CLI printed."""
    return Path(re.search(r"^Results and checkpoints: (\S+)$", out, re.M).group(1))


def parent_run_id(out: str) -> str:
    return re.search(r"MLflow:? parent run ([0-9a-f]{32})", out).group(1)


def reported(experiment_path: str | Path, first_of_each_epoch: bool = False) -> History:
    """Every train_* and val_* value each trial reported, by epoch, from the sweep's folder; with
    `first_of_each_epoch`, an epoch a restored trial trained again keeps the value reported first."""
    out: History = {}
    for path in Path(experiment_path).glob("*/result.json"):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            metrics = out.setdefault(result["trial_id"], {})
            for key, value in result.items():
                if key.startswith(("train_", "val_")) and isinstance(value, (int, float)):
                    values = metrics.setdefault(key, [])
                    if not (first_of_each_epoch and any(epoch == int(result["epoch"]) for epoch, _ in values)):
                        values.append((int(result["epoch"]), float(value)))
    return {trial: {key: sorted(values) for key, values in metrics.items()} for trial, metrics in out.items()}


def with_snapshot(history: History, last_results: dict[str, dict]) -> History:
    """`history` (from `reported`) with each trial's last result in a snapshot of the sweep where its results lack
    that epoch: Tune uploads a snapshot file by file, so a driver killed mid-upload can leave a snapshot whose
    last results are ahead of the stored results files."""
    out = {trial: {key: list(values) for key, values in metrics.items()} for trial, metrics in history.items()}
    for trial, result in last_results.items():
        if "epoch" not in result:  # a trial that had not reported an epoch yet
            continue
        for key, values in out.get(trial, {}).items():
            if result["epoch"] not in {epoch for epoch, _ in values} and key in result:
                values.append((int(result["epoch"]), float(result[key])))
                values.sort()
    return out


def logged(client: MlflowClient, parent_run_id: str, keys: History | None = None) -> History:
    """The same from the child runs of `parent_run_id`: for each trial, the metrics `keys` has for it (default:
    every train_* and val_* metric of its run)."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    out: History = {}
    for child in children:
        trial = child.data.tags["lstm_ray.trial_id"]
        names = (keys or {}).get(trial) or [k for k in child.data.metrics if k.startswith(("train_", "val_"))]
        out[trial] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)) for key in names
        }
    return out


def epochs_once_each(history: History) -> bool:
    """Every metric of every trial holds epochs 1..N, each exactly once, all finite."""
    return all(
        [epoch for epoch, _ in values] == list(range(1, len(values) + 1))
        and all(math.isfinite(value) for _, value in values)
        for metrics in history.values()
        for values in metrics.values()
    )


def wait_for_first_metric(url: str, experiment: str) -> None:
    """Block until some child run of the sweep holds a metric in the server."""
    client = connect(url)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        trials = client.search_runs([found.experiment_id], "tags.`lstm_ray.role` = 'trial'") if found else []
        if any(run.data.metrics for run in trials):
            return
        time.sleep(0.5)
    raise AssertionError(f"no trial metric reached the server within {WAIT_LIMIT_S} s")
