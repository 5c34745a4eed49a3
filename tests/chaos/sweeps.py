"""Sweeps of the chaos suite: tiny experiments for the cluster, the `lstm-ray` CLI as their driver, and what
Ray Tune and Ray's state API recorded of them."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from pathlib import Path

import yaml
from cli_runs import cli, finish
from conftest import TINY, load_local_cluster

WAIT_LIMIT_S = 600  # a guard against a sweep that never gets there, not a timing assertion


local_cluster = load_local_cluster()


def write_sweep(folder: Path, name: str, tracking_uri: str, **sections: dict) -> Path:
    """The tiny experiment named `name`, logging to `tracking_uri`, results in folder/results; `sections` are
    merged into it (e.g. train={"max_epochs": 8})."""
    raw = copy.deepcopy(TINY) | {"name": name}
    raw["tracking"] = {"uri": tracking_uri}
    raw["storage"] = {"path": str(folder / "results")}
    for section, values in sections.items():
        raw[section] = raw.get(section, {}) | values
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def random_sweep(folder: Path, name: str, tracking_uri: str, trials: int, epochs: int, **sections: dict) -> Path:
    """`write_sweep` of `trials` random trials (hidden 4 or 8, lr 1e-3..3e-2) that all train `epochs` epochs."""
    search = {
        "algorithm": "random",
        "scheduler": "fifo",
        "num_samples": trials,
        "space": {"model.hidden_size": {"choice": [4, 8]}, "train.lr": {"loguniform": [1e-3, 3e-2]}},
    }
    train = {"max_epochs": epochs, "batch_size": 16}
    return write_sweep(folder, name, tracking_uri, train=train, search=search, **sections)


def run_cli(cluster, *args: str, cwd: Path) -> tuple[int, str]:
    """`lstm-ray ARGS` as a driver of the cluster, to its end: (exit code, stdout and stderr)."""
    process = cli(*args, cwd=cwd, env=cluster.client_env())
    out = finish(process, timeout=WAIT_LIMIT_S)
    return process.returncode, out


def tune_rows(results: Path) -> dict[str, list[dict]]:
    """Trial id -> the results Ray Tune recorded for it so far, in the order they came (under `results`)."""
    rows: dict[str, list[dict]] = {}
    for path in results.glob("*/*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows.setdefault(row["trial_id"], []).append(row)
    return rows


def wait_until(predicate, what: str, process=None):
    """Poll `predicate` until it returns something true, and return that; fail if `process` ends first."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}:\n{process.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"not within {WAIT_LIMIT_S} s: {what}")


def ray_state(cluster, path: str):
    """GET `path` from the cluster's dashboard (Ray's state API), with the cluster's token."""
    request = urllib.request.Request(
        f"{cluster.dashboard_url}{path}",
        headers={"Authorization": f"Bearer {Path(cluster.auth_token_path).read_text().strip()}"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)["data"]["result"]["result"]


def node_of(cluster, pid: int) -> dict:
    """The node (from Ray's state API, dead ones included) whose actor ran in process `pid`."""
    actors = ray_state(
        cluster, f"/api/v0/actors?detail=1&limit=10000&filter_keys=pid&filter_predicates=%3D&filter_values={pid}"
    )
    (node_id,) = {actor["node_id"] for actor in actors}
    nodes = ray_state(cluster, "/api/v0/nodes?detail=1&limit=1000")
    return next(node for node in nodes if node["node_id"] == node_id)
