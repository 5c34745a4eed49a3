"""`lstm-ray preflight` against a real local cluster with Ray's fake autoscaler (scripts/local_cluster.py).

The cluster starts as a head with no CPU or GPU and one autoscaler node type, `gpu_worker` (1 CPU, 1 fake GPU,
up to 2 nodes): a trial fits no live node but can be autoscaled to, and the probes must wait for the node the
autoscaler adds for them. The CLI runs as a subprocess with the cluster's client environment; the checks run
on the head as a Ray job.
"""

from __future__ import annotations

import socket

import pytest
from cluster_runs import dashboard_get, local_cluster, lstm_ray, start, stop, tiny_sweep, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def scaling_cluster(tmp_path_factory):
    handle = start(
        tmp_path_factory.mktemp("preflight-cluster"),
        workers=0,
        gpus_per_worker=1,
        cpus_per_worker=1,
        autoscaling=True,
        max_autoscaled_workers=2,
    )
    try:
        yield handle
    finally:
        stop(handle)


def preflight(handle, sweep, *overrides: str):
    sets = [arg for override in overrides for arg in ("--set", override)]
    return lstm_ray(handle, "preflight", str(sweep), *sets, "--address", handle.dashboard_url, "--timeout", "10")


def checks(stdout: str) -> dict[str, str]:
    """Check name -> its line, from the `OK   name: ...` / `FAIL name: ...` lines."""
    lines = [line for line in stdout.splitlines() if line.startswith(("OK ", "FAIL "))]
    return {line.split()[1].rstrip(":"): line for line in lines}


def test_a_good_config_passes_with_probes_on_a_node_the_autoscaler_adds(scaling_cluster, tmp_path):
    assert wait_for(lambda: len(local_cluster.alive_nodes(scaling_cluster)) == 1, timeout=90)
    # CPU trials: the fake-GPU worker's torch has no CUDA, which the cuda check (test_preflight_versions) fails
    done = preflight(scaling_cluster, tiny_sweep(tmp_path), "resources.gpu=0")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    found = checks(done.stdout)
    assert list(found) == ["config", "resources", "versions", "storage", "mlflow"]
    assert all(line.startswith("OK ") for line in found.values()), done.stdout
    assert "fits no live node; the autoscaler can add gpu_worker (up to 2)" in found["resources"]
    assert f"{tmp_path / 'results'} is writable and shared by the driver and 1 node(s)" in found["storage"]
    nodes = dashboard_get(scaling_cluster, "/api/v0/nodes?detail=1")["data"]["result"]["result"]
    assert any(not n["is_head_node"] for n in nodes)  # the storage probe ran on an autoscaled worker
    assert not list((tmp_path / "results").rglob("node-*"))  # the probe's files are gone


def test_an_impossible_resource_request_fails_naming_the_node_types(scaling_cluster, tmp_path):
    assert wait_for(lambda: len(local_cluster.alive_nodes(scaling_cluster)) == 1, timeout=90)  # probes on the head
    done = preflight(scaling_cluster, tiny_sweep(tmp_path), "resources.gpu=4")
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    found = checks(done.stdout)
    assert found["resources"].startswith("FAIL resources: no live node or autoscaler node type fits a trial's")
    assert "{CPU: 1, GPU: 4}" in found["resources"] and "gpu_worker {CPU: 1, GPU: 1}" in found["resources"]
    assert found["storage"].startswith("OK ") and found["mlflow"].startswith("OK ")  # still checked


def test_an_unreachable_mlflow_fails_with_the_fix(scaling_cluster, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = preflight(scaling_cluster, tiny_sweep(tmp_path), f"tracking.uri=http://127.0.0.1:{port}")
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    line = checks(done.stdout)["mlflow"]
    assert line.startswith(f"FAIL mlflow: cannot reach http://127.0.0.1:{port} from the driver: connection refused")
    assert "Start the server (scripts/mlflow_server.py) or set tracking.uri" in line


def test_storage_the_driver_cannot_write_fails_with_the_fix(scaling_cluster, tmp_path):
    done = preflight(scaling_cluster, tiny_sweep(tmp_path), "storage.path=/proc/lstm-ray-results")
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    line = checks(done.stdout)["storage"]
    assert line.startswith("FAIL storage: cannot write /proc/lstm-ray-results from the driver")
