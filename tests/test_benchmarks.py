"""Smoke tests of the benchmarks in scripts/bench/: each one runs to the end at a tiny size.

Nothing here is timed: the benchmarks' numbers are only meaningful at full size and are recorded in
docs/benchmarks.md. Every run passes --no-save (or its quick mode), so docs/bench-results/ is left alone.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "scripts" / "bench"

pytestmark = pytest.mark.slow


def run_benchmark(script: str, *args: str, timeout: float = 900) -> str:
    """Run scripts/bench/SCRIPT with ARGS in a fresh interpreter; returns its stdout, failing on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_trainer_benchmark_compares_our_loop_with_plain_pytorch():
    out = run_benchmark("trainer.py", "--quick")
    assert "hidden   32:" in out and "matmul peak" in out


def test_throughput_benchmark_runs_all_three_contenders():
    out = run_benchmark("throughput.py", "--trials", "2", "--epochs", "1", "--no-save")
    for name in ("lstm-ray", "optuna", "ray-docs"):
        assert f"{name:9s}: 2 trials" in out
    assert "lstm-ray / optuna:" in out


def test_tracking_overhead_benchmark_runs_with_mlflow_on_and_off():
    out = run_benchmark("tracking_overhead.py", "--trials", "2", "--epochs", "1", "--repeats", "1", "--no-save")
    assert "tracking off:" in out and "tracking on :" in out and "tracking on costs" in out


def test_search_efficiency_benchmark_runs_every_strategy():
    out = run_benchmark("search_efficiency.py", "--seeds", "1", "--trials", "2", "--epochs", "1", "--no-save")
    for name in ("lstm-ray", "random", "grid", "optuna"):
        assert f"seed 0 {name:8s}: best" in out


def test_searcher_benchmark_compares_a_bounded_history_with_all_of_it():
    out = run_benchmark("searcher.py", "--trials", "300", "--window", "50", "--max-history", "100", "--no-save")
    assert "max_history 100:" in out and "every trial     :" in out and "max_history / every trial:" in out


def test_checkpoints_benchmark_runs_each_number_kept():
    out = run_benchmark("checkpoints.py", "--trials", "12", "--epochs", "3", "--no-save")
    for name in ("keep 2", "keep 5", "keep all"):
        assert f"{name:8s}: 12 trials" in out
    assert "wall time against keeping all: keep 2" in out


def test_asha_reporting_benchmark_runs_on_given_curves(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import asha_reporting
    finally:
        sys.path.remove(str(BENCH))
    epochs, rng = asha_reporting.EPOCHS, random.Random(0)
    curves = {}
    for values in itertools.product(*asha_reporting.SPACE.values()):
        params = dict(zip(asha_reporting.SPACE, values, strict=True))
        floor = 1.0 + rng.random()  # synthetic learning curves: each configuration levels off at its own floor
        val = [floor + 1.0 / (e + 1) for e in range(epochs)]
        curves[asha_reporting.key(params)] = {"val": val, "test": val, "seconds": [0.1] * epochs}
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(curves))
    out = run_benchmark("asha_reporting.py", "--seeds", "2", "--curves", str(path), "--no-save")
    assert "lstm-ray / Ray default:" in out


@pytest.mark.cluster
def test_scale_benchmark_runs_on_a_local_multi_node_cluster():
    out = run_benchmark("scale.py", "--trials", "12", "--workers", "2", "--no-save")
    assert "12 trials" in out and "driver peak RSS" in out


def test_quality_benchmark_compares_winners_with_baselines_and_the_linear_reference():
    out = run_benchmark(
        "quality.py", "--only", "co2-h4", "japanese_vowels", "--trials", "2", "--epochs", "2", "--no-save"
    )
    assert "co2-h4: winner test_rmse" in out and "last_value" in out and "linear AR" in out
    assert "japanese_vowels: winner test_accuracy" in out and "majority" in out


def test_window_norm_benchmark_prints_each_setting_against_the_last_value():
    out = run_benchmark("window_norm.py", "--no-save")
    assert "| standard / none |" in out and "x last_value" in out
