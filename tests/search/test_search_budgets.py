"""Budgets and concurrency: trial caps, target values, wall-clock limits, and fractional GPUs packed on one GPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO
from tune_runs import kill_session, run, tiny

pytestmark = pytest.mark.slow

SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}}


def test_max_trials_caps_a_grid(tiny_raw, tmp_path, local_ray):
    space = {"model.hidden_size": {"grid": [2, 4, 6, 8]}}
    cfg = tiny(tiny_raw, tmp_path, algorithm="grid", scheduler="fifo", space=space, num_samples=2, max_trials=3)
    cfg.train.max_epochs = 1
    results, _ = run(cfg)
    assert len(results) == 3 and results.num_terminated == 3


def test_reaching_the_target_ends_the_sweep(tiny_raw, tmp_path, local_ray):
    cfg = tiny(tiny_raw, tmp_path, scheduler="fifo", space=SPACE, num_samples=12, stop={"val_rmse": 1.0e9})
    results, recorder = run(cfg)
    assert len(results) < 12 and results.num_errors == 0
    assert min(recorder.epochs.values()) < cfg.train.max_epochs  # running trials were stopped too


def test_the_time_budget_ends_the_sweep(tiny_raw, tmp_path, local_ray):
    cfg = tiny(tiny_raw, tmp_path, algorithm="random", scheduler="fifo", space=SPACE, num_samples=200, time_budget=2)
    results, _ = run(cfg)
    assert 0 < len(results) < 200 and results.num_errors == 0


FRACTIONAL_GPUS = """
import json, sys
sys.path.insert(0, {tests!r})
import ray
from conftest import TINY
from tune_runs import kill_session, run, tiny
from lstm_ray.sweep.tuning import trial_slots
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)  # one fake GPU
raw = TINY | {{"resources": {{"cpu": 0.5, "gpu": 0.25}}}}
cfg = tiny(raw, __import__("pathlib").Path({tmp!r}), scheduler="fifo", num_samples=4,
           space={{"train.lr": {{"loguniform": [1.0e-3, 3.0e-2]}}}})
cfg.train.max_epochs, cfg.train.batch_size, cfg.model.hidden_size = 8, 16, 8
results, recorder = run(cfg)
print(json.dumps({{"slots": trial_slots(cfg), "most_running": recorder.most_running, "errors": results.num_errors,
                  "resources": list(recorder.resources.values())}}))
ray.shutdown()
"""


def test_fractional_gpus_pack_four_trials_on_one_gpu(tmp_path):
    script = FRACTIONAL_GPUS.format(tests=str(REPO / "tests"), tmp=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        kill_session(proc.pid)  # whatever of it is still alive, Ray's own processes included
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["slots"] == 4 and report["errors"] == 0
    assert report["most_running"] == 4  # four trials at once on one (fake) GPU
    assert all(r == {"CPU": 0.5, "GPU": 0.25} for r in report["resources"])
