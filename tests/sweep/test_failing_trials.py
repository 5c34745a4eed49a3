"""A sweep in which every trial fails ends with the CLI's summary, each reason and exit 1: no traceback.

Every trial trains plain SGD at lr 10 with no clipping on globally scaled windows (data.window_norm: none), which
turns the loss NaN in epoch 1 (DivergedError), so no trial reports the metric. Real Ray, real SQLite MLflow.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re

import pytest
import yaml
from conftest import TINY
from mlflow.tracking import MlflowClient

import lstm_ray
from lstm_ray.cli import main

pytestmark = pytest.mark.slow

DIVERGED = "DivergedError: train loss became nan at epoch 1; lower train.lr or clip harder"


def diverging(tiny_raw: dict, folder, trials: int) -> dict:
    """The tiny experiment with every trial set to diverge in its first epoch."""
    tiny_raw["data"]["window_norm"] = "none"  # the per-window norm keeps lr 10 from diverging
    tiny_raw["train"] |= {"optimizer": "sgd", "lr": 10.0, "grad_clip": 0.0, "batch_size": 16}
    tiny_raw["search"] = {"algorithm": "random", "num_samples": trials, "space": {}}
    tiny_raw["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": "all-fail"}
    tiny_raw["storage"] = {"path": str(folder / "results")}
    return tiny_raw


@pytest.fixture(scope="module")
def failed_cli_sweep(local_ray, tmp_path_factory):
    """`lstm-ray tune` run in this process on a sweep of 2 diverging trials: (exit code, stdout, stderr, cfg)."""
    folder = tmp_path_factory.mktemp("all-fail")
    raw = diverging(copy.deepcopy(TINY), folder, trials=2)
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["tune", str(path)])
    return code, out.getvalue(), err.getvalue(), raw


def test_the_cli_ends_with_the_summary_and_each_reason_and_exits_1(failed_cli_sweep):
    code, out, err, _ = failed_cli_sweep
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "Sweep tiny: 2 trials in" in out and "(0 completed, 0 stopped early, 2 failed)" in out
    reasons = re.findall(r"^  (.+) \((\d+) trials?: (.+)\)$", out, re.M)
    assert len(reasons) == 1, out
    reason, count, trials = reasons[0]
    assert reason.endswith(DIVERGED) and count == "2" and len(trials.split(", ")) == 2, out
    assert err.strip().splitlines()[-1].startswith("error: sweep tiny failed: no trial reported val_rmse")


def test_the_parent_run_is_closed_failed_with_the_reasons(failed_cli_sweep):
    _, out, _, raw = failed_cli_sweep
    client = MlflowClient(raw["tracking"]["uri"])
    experiment = client.get_experiment_by_name("all-fail")
    parents = client.search_runs([experiment.experiment_id], "tags.`lstm_ray.role` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    run_id = parents[0].info.run_id
    assert f"parent run {run_id} closed FAILED" in out
    tag = parents[0].data.tags["lstm_ray.error"]
    assert tag.startswith("no trial reported val_rmse: ") and DIVERGED in tag
    listed = client.download_artifacts(run_id, "failures.txt")
    with open(listed) as handle:
        (line,) = handle.read().splitlines()
    assert f"{DIVERGED} (2 trials: " in line


def test_the_api_raises_sweep_failed_carrying_the_reasons(local_ray, tiny_raw, tmp_path):
    with pytest.raises(lstm_ray.api.SweepFailed) as raised:
        lstm_ray.tune(diverging(tiny_raw, tmp_path, trials=1), progress=False)
    ((reason, trials),) = raised.value.reasons.items()
    assert reason.endswith(DIVERGED) and len(trials) == 1
    assert DIVERGED in str(raised.value) and raised.value.summary.counts["failed"] == 1


def test_a_time_budget_that_ends_before_any_epoch_says_so(local_ray, tiny_raw, tmp_path):
    """A budget that passes the estimate before Ray (a tiny epoch takes ~0.03 s) but not Ray's own start ends with
    why."""
    tiny_raw["search"] = {"algorithm": "random", "num_samples": 2, "space": {}, "time_budget": "1s"}
    tiny_raw["tracking"] = {"enabled": False}
    tiny_raw["storage"] = {"path": str(tmp_path / "results")}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["tune", str(path)])
    assert code == 1 and "Traceback" not in out.getvalue() + err.getvalue(), out.getvalue() + err.getvalue()
    assert "search.time_budget '1s' ran out before the trial finished its first epoch" in out.getvalue()
