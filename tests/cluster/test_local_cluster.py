"""scripts/local_cluster.py against real Ray: several nodes on 127.0.0.1, fake GPUs, Tune, autoscaling, stop.

Drivers run in subprocesses with `ClusterHandle.client_env()` (token auth, loopback address) so this
process never imports Ray against the cluster; every cluster is stopped in a `finally`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cluster_runs import gone, wait_for
from conftest import load_local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


local_cluster = load_local_cluster()


def run_driver(handle, code: str, cwd: Path, timeout: float = 120.0) -> dict:
    """Run `code` as a Ray driver against the cluster; it prints one JSON line last, returned as a dict."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=handle.client_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"driver failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def listening_addresses(pids: list[int]) -> dict[str, int]:
    """host:port -> pid for every TCP socket in LISTEN state owned by `pids` (from /proc/net/tcp{,6})."""
    inodes = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # kernel words are little-endian
            found[f"{socket.inet_ntop(family, raw)}:{int(port, 16)}"] = inodes[fields[9]]
    return found


NODES_DRIVER = """
import json, os, ray
ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR")
alive = [n for n in ray.nodes() if n["Alive"]]
print(json.dumps({"alive": len(alive), "gpus": ray.cluster_resources().get("GPU", 0),
                  "addresses": sorted({n["NodeManagerAddress"] for n in alive})}))
"""

PLACEMENT_DRIVER = """
import json, os, ray
from ray import tune

ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
nodes = [n for n in ray.nodes() if n["Alive"]]
head = next(n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"])

def trainable(config):
    import os, time
    import ray
    from ray import tune
    time.sleep(1)
    tune.report({"x": config["x"], "node": ray.get_runtime_context().get_node_id(),
                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "session": os.getsid(0)})

results = tune.Tuner(
    tune.with_resources(trainable, {"cpu": 0, "gpu": 0.5}),
    param_space={"x": tune.grid_search([1, 2, 3, 4])},
    run_config=tune.RunConfig(name="placement", storage_path=os.path.abspath("results"), verbose=0),
).fit()
print(json.dumps({"head": head, "nodes": [n["NodeID"] for n in nodes], "errors": results.num_errors,
                  "trials": [{k: r.metrics[k] for k in ("node", "cuda", "session")} for r in results]}))
"""

AUTOSCALE_DRIVER = """
import json, os, threading, time, ray
from ray import tune

ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
head = ray.get_runtime_context().get_node_id()
most = [1]

def count_nodes():
    while True:
        most[0] = max(most[0], sum(n["Alive"] for n in ray.nodes()))
        time.sleep(1)

threading.Thread(target=count_nodes, daemon=True).start()

def trainable(config):
    import os, time
    import ray
    from ray import tune
    time.sleep(8)
    tune.report({"node": ray.get_runtime_context().get_node_id(),
                 "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "")})

results = tune.Tuner(
    tune.with_resources(trainable, {"cpu": 0, "gpu": 0.5}),
    param_space={"x": tune.grid_search(list(range(6)))},
    run_config=tune.RunConfig(name="scale", storage_path=os.path.abspath("results"), verbose=0),
).fit()
print(json.dumps({"head": head, "most_nodes": most[0], "errors": results.num_errors,
                  "trials": [{k: r.metrics[k] for k in ("node", "cuda")} for r in results]}))
"""


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    """Head (0 CPUs) + 2 workers with 1 CPU and 2 fake GPUs each."""
    handle = local_cluster.start_cluster(
        tmp_path_factory.mktemp("gpu-cluster"), workers=2, gpus_per_worker=2, cpus_per_worker=1
    )
    try:
        yield handle
    finally:
        local_cluster.stop_cluster(handle, remove_temp_root=True)


def test_three_alive_nodes_and_four_fake_gpus(gpu_cluster, tmp_path):
    seen = run_driver(gpu_cluster, NODES_DRIVER, tmp_path)
    assert seen == {"alive": 3, "gpus": 4.0, "addresses": ["127.0.0.1"]}
    assert len(local_cluster.alive_nodes(gpu_cluster)) == 3


def test_every_server_listens_on_loopback_only(gpu_cluster):
    pids = [pid for members in gpu_cluster.session_pids().values() for pid in members]
    listening = listening_addresses(pids)
    gcs_port = gpu_cluster.gcs_address.rsplit(":", 1)[1]
    assert any(address.endswith(f":{gcs_port}") for address in listening), listening
    exposed = {
        a: pid for a, pid in listening.items() if a.rsplit(":", 1)[0] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    }
    assert exposed == {}


def test_dashboard_rejects_requests_without_the_token(gpu_cluster):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{gpu_cluster.dashboard_url}/api/v0/nodes", timeout=10)
    assert error.value.code == 401


def test_tune_trials_run_on_worker_nodes_with_cuda_visible_devices(gpu_cluster, tmp_path):
    seen = run_driver(gpu_cluster, PLACEMENT_DRIVER, tmp_path)
    assert seen["errors"] == 0 and len(seen["trials"]) == 4
    workers = set(seen["nodes"]) - {seen["head"]}
    assert {t["node"] for t in seen["trials"]} <= workers
    assert all(t["cuda"] in ("0", "1") for t in seen["trials"]), seen["trials"]
    # Each trial process lives in the session of a recorded worker node: stopping that node stops it.
    assert {t["session"] for t in seen["trials"]} <= {w.pid for w in gpu_cluster.workers}


def test_kill_worker_then_stop_leaves_no_process(tmp_path):
    fast_failure_detection = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3"}
    handle = local_cluster.start_cluster(
        tmp_path / "state", workers=2, cpus_per_worker=1, extra_env=fast_failure_detection
    )
    try:
        assert len(local_cluster.alive_nodes(handle)) == 3
        local_cluster.kill_worker(handle, 1)
        assert handle.session_pids()["worker-1"] == []
        assert handle.session_pids()["worker-2"] and handle.session_pids()["head"]
        assert wait_for(lambda: len(local_cluster.alive_nodes(handle)) == 2, timeout=30)
        assert local_cluster.load_cluster(handle.state_dir).workers[0].stopped
    finally:
        local_cluster.stop_cluster(handle, remove_temp_root=True)
    assert all(gone(pid) for pid in handle.pids())
    assert handle.session_pids() == {"head": [], "worker-1": [], "worker-2": []}


def test_autoscaler_adds_gpu_nodes_for_pending_trials_and_removes_them_when_idle(tmp_path):
    handle = local_cluster.start_cluster(
        tmp_path / "state",
        workers=0,
        gpus_per_worker=2,
        cpus_per_worker=1,
        autoscaling=True,
        max_autoscaled_workers=2,
        idle_timeout_minutes=0.1,
    )
    try:
        assert len(local_cluster.alive_nodes(handle)) == 1
        seen = run_driver(handle, AUTOSCALE_DRIVER, tmp_path, timeout=150)
        # 6 trials x 0.5 GPU = 3 GPUs: the autoscaler had to add both 2-GPU worker nodes.
        assert seen["errors"] == 0 and len(seen["trials"]) == 6
        trial_nodes = {t["node"] for t in seen["trials"]}
        assert seen["head"] not in trial_nodes and len(trial_nodes) == 2
        assert seen["most_nodes"] == 3
        assert all(t["cuda"] in ("0", "1") for t in seen["trials"])
        # Idle for idle_timeout_minutes (6 s): the autoscaler removes them again, processes included.
        assert wait_for(lambda: len(local_cluster.alive_nodes(handle)) == 1, timeout=60)
        assert wait_for(lambda: _raylets(handle) == 1, timeout=20)
    finally:
        local_cluster.stop_cluster(handle, remove_temp_root=True)
    assert all(gone(pid) for pid in handle.pids()) and handle.session_pids() == {"head": []}


def _raylets(handle) -> int:
    """Raylet processes in the head's session: the head's own plus one per autoscaled node."""
    count = 0
    for pid in handle.session_pids()["head"]:
        try:
            count += Path(f"/proc/{pid}/comm").read_text().strip() == "raylet"
        except OSError:
            pass
    return count


def test_a_reused_pid_is_never_signalled(tmp_path):
    # Stand-in for a node whose PID was reused after it died: a session leader with a different start time.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        wait_for(lambda: local_cluster._start_ticks(stranger.pid), timeout=5)
        record = local_cluster.NodeRecord("worker-1", stranger.pid, "", "", 0, 1, 0, start_ticks=1)
        handle = local_cluster.ClusterHandle(
            state_dir=str(tmp_path), gcs_address="", dashboard_url="", client_address="", auth_token_path="",
            temp_root="", env={}, head=local_cluster.NodeRecord("head", 0, "", "", 0, 0, 0), workers=[record],
        )  # fmt: skip
        assert handle.session_pids()["worker-1"] == []
        local_cluster.kill_worker(handle, 1)
        assert stranger.poll() is None
        record.start_ticks = local_cluster._start_ticks(stranger.pid)
        assert handle.session_pids()["worker-1"] == [stranger.pid]
    finally:
        stranger.kill()
        stranger.wait()
