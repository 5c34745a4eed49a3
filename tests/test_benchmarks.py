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
import torch

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


def import_bench(name: str):
    """scripts/bench/NAME.py as a module (the benchmarks import their `common` from their own folder)."""
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("mode", [[], ["--quick"]])
def test_gpu_benchmark_dry_run_plans_valid_sweeps_for_every_packing_precision_and_two_gpus(mode):
    from lstm_ray.config import parse_config

    out = run_benchmark("gpu.py", "--dry-run", *mode, timeout=120)
    planned = [line.split(": ", 1) for line in out.splitlines() if line.startswith("RUN ")]
    configs = {name.removeprefix("RUN "): parse_config(json.loads(config)) for name, config in planned}
    for model, hidden in (("small", 64), ("large", 512)):
        runs = [c for c in configs.values() if c.model.hidden_size == hidden]
        # resources.gpu -> trials at once (grid over train.seed): 1, 2, 4, 8 per GPU, and one trial over 2 GPUs
        fp32 = {c.resources.gpu: len(c.search.space["train.seed"]["grid"]) for c in runs if c.train.precision == "fp32"}
        data_parallel = {2: 1} if model == "large" or not mode else {}
        assert fp32 == {1: 1, 0.5: 2, 0.25: 4, 0.125: 8} | data_parallel
        assert sorted(c.train.precision for c in runs if c.resources.gpu == 1) == ["bf16", "fp16", "fp32"]
    assert all(c.search.scheduler == "fifo" and not c.tracking.enabled for c in configs.values())
    assert "runs on 2 GPUs: only where 2 exist" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the benchmark would run")
def test_gpu_benchmark_says_in_one_line_that_there_is_no_gpu():
    out = run_benchmark("gpu.py", "--quick", timeout=120)
    assert out.splitlines() == [
        f"no CUDA GPU here (torch {torch.__version__}): nothing measured; run it on a GPU machine"
    ]


def test_gpu_benchmark_runs_the_smallest_case_on_the_cpu_with_ratios_and_a_table():
    out = run_benchmark("gpu.py", "--device", "cpu", "--quick", "--no-save", timeout=600)
    assert "small fp32 x1             : 2 trial-epochs" in out and "1.00x baseline" in out
    assert "small fp32 x2             : 4 trial-epochs" in out
    assert "| small 64x1 | fp32 | 2 | 1 |" in out


def test_gpu_usage_reads_the_gpus_a_run_used_while_its_trials_trained():
    gpu = import_bench("gpu")
    before = [(0.0, 500.0), (0.0, 1000.0)]  # (busy %, MiB) per GPU as the run began
    samples = [
        (1.0, [(0.0, 500.0), (0.0, 1200.0)]),  # the sweep starting: no epoch yet
        (2.0, [(0.0, 500.0), (80.0, 3000.0)]),
        (3.0, [(10.0, 700.0), (90.0, 2500.0)]),
        (9.0, [(0.0, 9000.0), (0.0, 9000.0)]),  # after the run: another run's
    ]
    assert gpu.usage(samples, (0.5, 4.0), (1.5, 3.5), before, gpus=1) == {"busy_pct": 85.0, "memory_mib": 2000.0}
    both = gpu.usage(samples, (0.5, 4.0), (1.5, 3.5), before, gpus=2)
    assert both == {"busy_pct": 45.0, "memory_mib": 2200.0}
    untimed = [(t, [(None, mib) for _, mib in s]) for t, s in samples]  # no NVML: memory only
    assert gpu.usage(untimed, (0.5, 4.0), (1.5, 3.5), before, gpus=1)["busy_pct"] is None
    assert gpu.usage(samples, (20.0, 30.0), (21.0, 29.0), before, gpus=1) == {"busy_pct": None, "memory_mib": None}
