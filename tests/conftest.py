"""Shared fixtures: tiny configs (hidden 8, 1 layer, 2 epochs, CPU) and a real local Ray for sweep tests."""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

from lstm_ray.config import ExperimentConfig, parse_config

REPO = Path(__file__).resolve().parent.parent

# Every sweep signs its folder with the user's resume key (~/.config/lstm-ray/resume.key, created on first use):
# the suite, and the CLIs it starts, use a key folder of their own instead of the user's.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="lstm-ray-test-config-")


def load_local_cluster():
    """scripts/local_cluster.py as the module `local_cluster` (scripts/ is not a package)."""
    if "local_cluster" in sys.modules:
        return sys.modules["local_cluster"]
    spec = importlib.util.spec_from_file_location("local_cluster", REPO / "scripts" / "local_cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_cluster"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


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


def _sine_windows(phase: float = 0.0, amplitude: float = 1.0, lookback: int = 12, rows: int = 600):
    """Train / val / test windows (lookback -> 1 step) of a sine wave, split 70 / 15 / 15 in time."""
    import numpy as np

    from lstm_ray.data.windows import Windows

    values = (amplitude * np.sin(np.arange(rows) / 6.0 + phase)).astype(np.float32)
    starts = np.arange(lookback, rows)
    x = np.stack([values[s - lookback : s] for s in starts])[..., None]
    y = values[starts].reshape(-1, 1, 1)
    cut1, cut2 = int(len(starts) * 0.7), int(len(starts) * 0.85)
    cuts = (("train", 0, cut1), ("val", cut1, cut2), ("test", cut2, None))
    return {name: Windows(x[a:b], y[a:b]) for name, a, b in cuts}


def _class_windows(n_classes: int = 3, per_class: int = 60, max_steps: int = 20, seed: int = 0):
    """Zero-padded sequences of varying length whose class is the frequency of a noisy sine, split 60 / 20 / 20."""
    import numpy as np

    from lstm_ray.data.windows import Windows

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(labels)
    lengths = rng.integers(max_steps // 2, max_steps + 1, size=len(labels))
    x = np.zeros((len(labels), max_steps, 2), dtype=np.float32)
    for i, (label, length) in enumerate(zip(labels, lengths, strict=True)):
        steps = np.arange(length)
        x[i, :length, 0] = np.sin(steps * (0.3 + 0.5 * label) + rng.uniform(0, 6.3))
        x[i, :length, 1] = 0.3 * rng.standard_normal(length)
    n = len(labels)
    cuts = (("train", 0, int(n * 0.6)), ("val", int(n * 0.6), int(n * 0.8)), ("test", int(n * 0.8), n))
    return {name: Windows(x[a:b], labels[a:b].astype(np.int64), lengths[a:b].astype(np.int64)) for name, a, b in cuts}


@pytest.fixture
def sine_windows():
    """A factory of forecasting windows of a sine wave: sine_windows(phase=0.0, amplitude=1.0)."""
    return _sine_windows


@pytest.fixture
def class_windows():
    """A factory of padded classification sequences: class_windows(n_classes=3, per_class=60)."""
    return _class_windows
