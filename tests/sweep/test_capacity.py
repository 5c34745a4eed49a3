"""Cluster capacity without a cluster: what a trial asks for, and the autoscaler's node types from its config."""

from __future__ import annotations

import subprocess
import sys
import time

from lstm_ray.config import parse_config
from lstm_ray.sweep.capacity import UNLIMITED, NodeType, autoscaler_config, fits, node_types_from_config, trial_demand


def test_a_trial_asks_for_its_cpus_and_gpus_and_fits_where_both_are(tiny_raw):
    demand = trial_demand(parse_config(tiny_raw | {"resources": {"cpu": 2, "gpu": 0.5}}))
    assert demand == {"CPU": 2, "GPU": 0.5}
    assert (
        fits(demand, {"CPU": 2, "GPU": 1}) and not fits(demand, {"CPU": 8}) and not fits(demand, {"CPU": 1, "GPU": 4})
    )
    assert trial_demand(parse_config(tiny_raw)) == {"CPU": 1}


def test_node_types_come_from_a_launcher_config_without_the_head_and_within_max_workers():
    config = {
        "max_workers": 3,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}, "node_config": {}},
            "gpu_1x": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 8},
            "cpu": {"resources": {"CPU": 16}},
        },
    }
    assert node_types_from_config(config) == [
        NodeType("gpu_1x", {"CPU": 4, "GPU": 1}, 3),
        NodeType("cpu", {"CPU": 16}, 3),
    ]
    assert node_types_from_config({}) == []
    unlimited = node_types_from_config({"available_node_types": {"gpu": {"resources": {"GPU": 1}}}})
    assert unlimited == [NodeType("gpu", {"GPU": 1}, UNLIMITED)]


def test_the_autoscaler_config_is_read_from_its_monitor_process_of_this_cluster_only(tmp_path):
    config = tmp_path / "autoscaling.yaml"
    config.write_text("max_workers: 2\navailable_node_types: {gpu: {resources: {GPU: 1}, max_workers: 2}}\n")
    # A real process whose command line reads like the autoscaler monitor of a cluster at 127.0.0.9:7777.
    argv = ["/x/ray/autoscaler/_private/monitor.py", "--gcs-address=127.0.0.9:7777", f"--autoscaling-config={config}"]
    monitor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    try:
        deadline = time.monotonic() + 10
        while not autoscaler_config("127.0.0.9:7777") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert autoscaler_config("127.0.0.9:7777")["available_node_types"]["gpu"]["max_workers"] == 2
        assert autoscaler_config("127.0.0.9:8888") == {}  # another cluster's autoscaler on the same machine
        assert autoscaler_config("10.0.0.9:7777")["max_workers"] == 2  # the same GCS, seen by its routable address
    finally:
        monitor.kill()
        monitor.wait()
