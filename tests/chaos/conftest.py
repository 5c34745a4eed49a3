"""One local multi-node Ray cluster and one MLflow tracking server, shared by the whole chaos suite.

Every node runs on 127.0.0.1 (scripts/local_cluster.py) and sees the same disk, which is the storage all
nodes share: a trial restored on another node finds its checkpoints. The sweeps' drivers are `lstm-ray`
processes with the cluster's client environment, so this process never joins the cluster. A test module that
takes a node or the server down leaves it to these fixtures to bring them back for the next module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mlflow_server_process import ServerProcess

from chaos.sweeps import local_cluster

WORKERS = 2  # one CPU each: two trials at a time on a 2-core machine
NODE_ENV = {
    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the nodes' `python` is this venv's
    # The GCS declares a killed node dead after 3 missed health checks 0.5 s apart, not after ~30 s.
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "3",
    # A trial's memory is held by its own hard limit (resources.memory_mb); Ray's node-wide OOM killer would
    # react to whatever else runs on this machine and kill trials the tests expect to finish.
    "RAY_memory_monitor_refresh_ms": "0",
}


@pytest.fixture(scope="session")
def _cluster(tmp_path_factory):
    handle = local_cluster.start_cluster(
        tmp_path_factory.mktemp("chaos-cluster"), workers=WORKERS, cpus_per_worker=1, extra_env=NODE_ENV
    )
    try:
        yield handle
    finally:
        local_cluster.stop_cluster(handle, remove_temp_root=True)


@pytest.fixture(scope="module")
def cluster(_cluster):
    """The session's cluster with WORKERS live workers (a new one joins for each an earlier test killed)."""
    while sum(not worker.stopped for worker in _cluster.workers) < WORKERS:
        local_cluster.add_worker(_cluster)
    return _cluster


@pytest.fixture(scope="session")
def _mlflow_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("chaos-mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_server(_mlflow_server):
    """The session's MLflow server, running (started again if an earlier test left it stopped)."""
    if not _mlflow_server.healthy():
        _mlflow_server.stop()
        _mlflow_server.start()
    return _mlflow_server
