"""search.stop and search.budget end a real sweep with a winner: no trial they stop loses the checkpoint of the
result that stopped it (a stop_all did: finish_sweep then had no checkpoint to score and crashed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

DRIVER = """
import json, sys
import ray
from lstm_ray.config import load_config
from lstm_ray.sweep.tuning import run_sweep

ray.init(num_cpus=3, num_gpus=2, include_dashboard=False, log_to_driver=False)
path = sys.argv[1]
summary = run_sweep(load_config(path), config_text=open(path).read())
print("RESULT " + json.dumps({"counts": summary.counts, "best": summary.best_value}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "stops",
    [{"stop": {"val_rmse": 1.0e9}}, {"budget": {"gpu_hours": 0.3 / 3600}}],  # both reached in the first epoch
    ids=["search.stop", "search.budget"],
)
def test_a_sweep_stopped_in_its_first_epoch_still_has_a_winner(tmp_path, stops):
    from cluster_runs import tiny_sweep

    search = {"algorithm": "random", "scheduler": "fifo", "num_samples": 6, "space": {}, "max_concurrent": 3}
    sweep = tiny_sweep(tmp_path, train={"max_epochs": 5}, search=search | stops)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(sweep)], capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["best"] > 0 and out["counts"]["failed"] == 0
    assert 0 < sum(out["counts"].values()) < 6  # no trial started after the stop
    assert out["counts"]["completed"] == 0  # each stopped before its 5th epoch
