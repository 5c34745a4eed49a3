"""`lstm-ray submit / status / stop` against a real local multi-node cluster (scripts/local_cluster.py).

The CLI runs as a subprocess with the cluster's client environment (token auth, loopback); the sweep's driver
runs on the head as a Ray job and is the only writer of the SQLite MLflow store. Evidence of where and when
trials ran comes from Ray's own state API (actors, task events) and the sweep's results. Every cluster is
stopped by its fixture, and every job driver (which Ray starts in a session of its own) is checked gone.
"""

from __future__ import annotations

import json
import re

import pytest
from cluster_runs import (
    dashboard_get,
    gone,
    local_cluster,
    lstm_ray,
    mlflow_runs,
    running_cluster,
    start,
    stop,
    tiny_sweep,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def job_id_of(stdout: str) -> str:
    return re.search(r"Submitted job (\S+) to ", stdout).group(1)


def _state(handle, kind: str, job: str) -> list[dict]:
    """Ray's state API: the `kind` (actors, tasks) of one Ray job, dead ones included."""
    query = f"detail=1&limit=10000&filter_keys=job_id&filter_predicates=%3D&filter_values={job}"
    return dashboard_get(handle, f"/api/v0/{kind}?{query}")["data"]["result"]["result"]


def trial_placement(handle, job: str) -> dict[int, dict]:
    """Trial actor pid -> its node, its GPU share and the span of its `train` calls (ms), from Ray's state API,
    for every actor that trained."""
    actors = {a["pid"]: a for a in _state(handle, "actors", job) if a["class_name"] == "ImplicitFunc"}
    spans: dict[int, list[float]] = {}
    for task in _state(handle, "tasks", job):
        if task["name"].endswith(".train") and task.get("worker_pid") in actors and task.get("start_time_ms"):
            span = spans.setdefault(task["worker_pid"], [task["start_time_ms"], task["end_time_ms"]])
            span[0], span[1] = min(span[0], task["start_time_ms"]), max(span[1], task["end_time_ms"])
    return {
        pid: {
            "node": actor["node_id"],
            "gpu": sum(v for k, v in actor["required_resources"].items() if k.startswith("GPU_group_0_")),
            "span": spans[pid],
        }
        for pid, actor in actors.items()
        if pid in spans  # Tune may start an actor for a trial slot that ends before it trains
    }


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("submit-cluster"), workers=2) as handle:
        yield handle


@pytest.fixture(scope="module")
def finished_sweep(gpu_cluster, tmp_path_factory):
    """A tiny sweep submitted with --follow and run to its end: (folder, job id, CLI result)."""
    folder = tmp_path_factory.mktemp("sweep")
    done = lstm_ray(gpu_cluster, "submit", str(tiny_sweep(folder)), "--address", gpu_cluster.dashboard_url, "--follow")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return folder, job_id_of(done.stdout), done


def test_submit_prints_the_job_and_where_to_follow_it(finished_sweep, gpu_cluster):
    _, job, done = finished_sweep
    assert f"dashboard: {gpu_cluster.dashboard_url}/#/jobs/{job}" in done.stdout
    assert f"lstm-ray status {job} --follow --address {gpu_cluster.dashboard_url}" in done.stdout
    assert "MLflow:    experiment 'tiny-cluster' at sqlite:///" in done.stdout
    assert "4/4 trials done: 4 completed" in done.stdout  # --follow streamed the driver's progress


def test_trials_ran_on_worker_nodes_two_at_once_on_one_gpu(finished_sweep, gpu_cluster):
    folder, job, _ = finished_sweep
    ray_job = next(j["job_id"] for j in dashboard_get(gpu_cluster, "/api/jobs/") if j["submission_id"] == job)
    placement = trial_placement(gpu_cluster, ray_job)
    # The sweep's own results name the processes its trials ran in: they are the actors found in Ray's state.
    files = (folder / "results").glob("*/*/result.json")
    pids = {json.loads(row)["pid"] for f in files for row in f.read_text().splitlines()}
    assert pids == set(placement) and len(placement) == 4
    nodes = {n["node_id"]: n for n in dashboard_get(gpu_cluster, "/api/v0/nodes?detail=1")["data"]["result"]["result"]}
    assert not any(nodes[p["node"]]["is_head_node"] for p in placement.values())
    assert all(p["gpu"] == 0.5 for p in placement.values())
    # Each worker has one GPU: two 0.5-GPU trials on one node whose train calls overlap shared it at once.
    shared = [
        (a, b)
        for a in placement
        for b in placement
        if a < b
        and placement[a]["node"] == placement[b]["node"]
        and placement[a]["span"][0] < placement[b]["span"][1]
        and placement[b]["span"][0] < placement[a]["span"][1]
    ]
    assert shared, placement


def test_mlflow_on_the_head_got_the_parent_run_and_every_trial(finished_sweep):
    folder, _, done = finished_sweep
    parent_id = re.search(r"MLflow parent run: ([0-9a-f]{32})", done.stdout).group(1)
    runs = mlflow_runs(folder)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.info.run_id for r in runs} == {parent_id} | {r.info.run_id for r in children}
    assert (folder / "mlruns").is_dir()  # the SQLite store's artifacts sit beside it, not in the job's temp dir


def test_status_shows_succeeded(finished_sweep, gpu_cluster):
    _, job, _ = finished_sweep
    done = lstm_ray(gpu_cluster, "status", job, "--address", gpu_cluster.dashboard_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{job}: SUCCEEDED")
    assert "MLflow: experiment 'tiny-cluster'" in done.stdout


def test_stop_interrupts_a_running_sweep_which_mlflow_records_as_killed(gpu_cluster, tmp_path):
    long = tiny_sweep(tmp_path, train={"max_epochs": 500}, search={"num_samples": 40})
    submitted = lstm_ray(gpu_cluster, "submit", str(long), "--address", gpu_cluster.dashboard_url)
    assert submitted.returncode == 0, submitted.stderr
    job = job_id_of(submitted.stdout)
    running = re.compile(r"trials done: .* \| [1-9]\d* running")  # the driver's progress line
    assert wait_for(lambda: running.search(dashboard_get(gpu_cluster, f"/api/jobs/{job}/logs")["logs"]), timeout=120)
    stopped = lstm_ray(gpu_cluster, "stop", job, "--address", gpu_cluster.dashboard_url)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"{job}: STOPPED")
    # The driver got SIGINT, like Ctrl-C: Tune saved the sweep and the parent run ended KILLED, resumable.
    parent = next(r for r in mlflow_runs(tmp_path) if r.data.tags.get("lstm_ray.role") == "sweep")
    assert parent.info.status == "KILLED"
    job_info = next(j for j in dashboard_get(gpu_cluster, "/api/jobs/") if j["submission_id"] == job)
    assert wait_for(lambda: gone(int(job_info["driver_info"]["pid"])), timeout=20)


def test_submit_without_the_token_says_to_set_ray_auth_mode(gpu_cluster, tmp_path):
    env = gpu_cluster.client_env()
    env.pop("RAY_AUTH_MODE")
    done = lstm_ray(gpu_cluster, "submit", str(tiny_sweep(tmp_path)), "--address", gpu_cluster.dashboard_url, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --address: {gpu_cluster.dashboard_url} requires a token: set RAY_AUTH_MODE=token and "
        "RAY_AUTH_TOKEN_PATH to its token file"
    )


def test_submit_with_a_wrong_token_says_which_variable_to_fix(gpu_cluster, tmp_path):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    env = gpu_cluster.client_env() | {"RAY_AUTH_TOKEN_PATH": str(wrong)}
    before = len(dashboard_get(gpu_cluster, "/api/jobs/"))
    done = lstm_ray(gpu_cluster, "submit", str(tiny_sweep(tmp_path)), "--address", gpu_cluster.dashboard_url, env=env)
    assert done.returncode == 2
    assert "rejected the token from RAY_AUTH_TOKEN_PATH" in done.stderr.strip().splitlines()[-1]
    assert len(dashboard_get(gpu_cluster, "/api/jobs/")) == before  # nothing was submitted


def test_a_bad_config_submits_nothing(gpu_cluster, tmp_path):
    before = len(dashboard_get(gpu_cluster, "/api/jobs/"))
    sweep = str(tiny_sweep(tmp_path))
    done = lstm_ray(gpu_cluster, "submit", sweep, "--set", "model.dropout=1.5", "--address", gpu_cluster.dashboard_url)
    assert done.returncode == 2 and done.stderr.startswith("error: model.dropout: must be in [0, 1)")
    assert len(dashboard_get(gpu_cluster, "/api/jobs/")) == before


def test_pending_gpu_trials_make_the_autoscaler_add_gpu_nodes_removed_when_idle(tmp_path):
    handle = start(
        tmp_path / "state", workers=0, gpus_per_worker=1, cpus_per_worker=1, autoscaling=True, max_autoscaled_workers=2
    )
    try:
        assert len(local_cluster.alive_nodes(handle)) == 1  # the head alone: no CPU, no GPU
        done = lstm_ray(handle, "submit", str(tiny_sweep(tmp_path)), "--address", handle.dashboard_url, "--follow")
        assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        assert "4/4 trials done: 4 completed" in done.stdout
        ray_job = next(
            j["job_id"] for j in dashboard_get(handle, "/api/jobs/") if j["submission_id"] == job_id_of(done.stdout)
        )
        placement = trial_placement(handle, ray_job)
        nodes = {n["node_id"]: n for n in dashboard_get(handle, "/api/v0/nodes?detail=1")["data"]["result"]["result"]}
        added = {node for node, n in nodes.items() if not n["is_head_node"]}
        assert added and all(nodes[node]["resources_total"].get("GPU") == 1 for node in added)  # gpu_worker nodes
        assert placement and {p["node"] for p in placement.values()} <= added
        # Idle for idle_timeout_minutes (6 s): the autoscaler removes them again.
        assert wait_for(lambda: len(local_cluster.alive_nodes(handle)) == 1, timeout=90)
    finally:
        stop(handle)
