"""The parts of preflight that need no cluster: resource checks, where probes go, the storage and MLflow probes.

The cluster-level behaviour (probes scheduled on nodes, the autoscaler's node types) is in
tests/cluster/test_preflight.py.
"""

from __future__ import annotations

import socket

import pytest

from lstm_ray.cluster.preflight import check_mlflow_uri, check_resources, probe_targets, storage_probe
from lstm_ray.sweep.capacity import UNLIMITED, NodeType

HEAD = {"NodeID": "h" * 56, "Resources": {"CPU": 0.0, "node:__internal_head__": 1.0}}
WORKER = {"NodeID": "w" * 56, "Resources": {"CPU": 2.0, "GPU": 1.0}}
GPU_TYPE = NodeType("gpu_worker", {"CPU": 8.0, "GPU": 1.0}, 4)


@pytest.fixture
def gpu_config(tiny_raw):
    from lstm_ray.config import parse_config

    def make(cpu: float = 1, gpu: float = 0.5):
        return parse_config(tiny_raw | {"resources": {"cpu": cpu, "gpu": gpu}})

    return make


def test_a_trial_that_fits_a_live_node_passes(gpu_config):
    check = check_resources(gpu_config(), [HEAD, WORKER], [])
    assert check.ok and "fits 1 of 2 live nodes" in check.detail


def test_a_trial_that_fits_only_a_node_type_passes_and_names_it(gpu_config):
    check = check_resources(gpu_config(cpu=4), [HEAD, WORKER], [GPU_TYPE])
    assert check.ok and "gpu_worker (up to 4)" in check.detail


def test_an_impossible_trial_fails_with_what_the_cluster_has_and_the_fix(gpu_config):
    check = check_resources(gpu_config(gpu=4), [HEAD, WORKER], [GPU_TYPE])
    assert not check.ok
    assert "{CPU: 1, GPU: 4}" in check.detail and "{CPU: 2, GPU: 1}" in check.detail
    assert "gpu_worker {CPU: 8, GPU: 1}" in check.detail and "resources.gpu" in check.detail
    assert check.line().startswith("FAIL resources: ")


def test_a_node_type_at_zero_max_workers_cannot_help(gpu_config):
    check = check_resources(gpu_config(cpu=4), [HEAD, WORKER], [NodeType("gpu_worker", {"CPU": 8, "GPU": 1}, 0)])
    assert not check.ok


def test_a_node_type_whose_resources_come_at_launch_is_not_held_against_the_trial(gpu_config):
    check = check_resources(gpu_config(gpu=4), [HEAD], [NodeType("p4d", {}, 2)])
    assert check.ok and "not checked" in check.detail


def test_a_node_type_without_a_limit_can_help(gpu_config):
    check = check_resources(gpu_config(cpu=4), [HEAD], [NodeType("gpu_worker", {"CPU": 8, "GPU": 1}, UNLIMITED)])
    assert check.ok and "gpu_worker (no limit)" in check.detail


def test_probes_go_to_workers_a_trial_fits_then_the_autoscaler_then_any_node(gpu_config):
    cfg = gpu_config()
    assert probe_targets(cfg, [HEAD, WORKER], trial_fits=True) == [WORKER["NodeID"]]
    assert probe_targets(cfg, [HEAD], trial_fits=True) is None  # wait where the autoscaler adds a node
    assert probe_targets(gpu_config(gpu=4), [HEAD, WORKER], trial_fits=False) == [WORKER["NodeID"]]
    assert probe_targets(gpu_config(gpu=4), [HEAD], trial_fits=False) == [HEAD["NodeID"]]


def test_storage_probe_sees_the_drivers_marker_and_leaves_its_own(tmp_path):
    folder = str(tmp_path / "probe")
    assert "cannot see the driver's file" in storage_probe(folder, "t0ken", "n1")
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "driver").write_text("t0ken")
    assert storage_probe(folder, "t0ken", "n1") == ""
    assert (tmp_path / "probe" / "node-n1").read_text() == "t0ken"


def test_a_sqlite_store_is_checked_as_a_file_without_creating_it(tmp_path):
    assert check_mlflow_uri(f"sqlite:///{tmp_path}/mlflow.db", 5) == ""
    assert not (tmp_path / "mlflow.db").exists()
    assert "missing or read-only" in check_mlflow_uri(f"sqlite:///{tmp_path}/absent/mlflow.db", 5)


def test_an_mlflow_server_that_is_not_there_fails_fast_with_the_gist():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    assert check_mlflow_uri(f"http://127.0.0.1:{port}", 5) == "connection refused: nothing listens there"
