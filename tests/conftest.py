"""Shared fixtures: tiny configs (hidden 8, 1 layer, 2 epochs, CPU) and a real local Ray for sweep tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lstm_ray.config import ExperimentConfig, parse_config

REPO = Path(__file__).resolve().parent.parent

TINY = {
    "name": "tiny",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 8, "horizon": 2},
    "model": {"cell": "lstm", "hidden_size": 8, "num_layers": 1},
    "train": {"max_epochs": 2, "batch_size": 128, "lr": 0.01},
    "search": {"num_samples": 2, "space": {}},
    "resources": {"cpu": 1},
}


@pytest.fixture
def tiny_raw() -> dict:
    """A fresh, mutable copy of the tiny experiment as plain data."""
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_config(tiny_raw: dict) -> ExperimentConfig:
    return parse_config(tiny_raw)


@pytest.fixture(scope="session")
def local_ray():
    """A real two-CPU Ray started in this process; ray.shutdown() stops exactly the processes it started."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
