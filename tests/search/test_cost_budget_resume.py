"""A budget survives `lstm-ray resume`: what the sweep spent before the interruption counts after it."""

from __future__ import annotations

import pytest
import yaml
from cli_runs import cli, finish
from mlflow.tracking import MlflowClient
from resume_runs import RESUMED_TRIALS, interrupted_after_a_result, resumable_sweep, sweep_runs


@pytest.mark.slow
def test_a_resumed_sweep_counts_what_it_spent_before_the_interruption(tmp_path):
    """Ctrl-C after a trial's first result, then resume: the parent's cost is every trial's (those that ended
    before the interruption included) plus the idle slots; a ledger that forgot the first run would log less than
    its trials."""
    path = tmp_path / "tiny.yaml"
    resumable_sweep(path, "sqlite:///mlflow.db", "results", keep_checkpoints=1)  # watched in storage
    raw = yaml.safe_load(path.read_text())
    raw["search"] |= {"budget": {"usd": 1.0e6}, "prices": {"cpu_hour": 3600.0}}  # 1 USD a core-second, no cap
    path.write_text(yaml.safe_dump(raw))
    first, out = interrupted_after_a_result(path, tmp_path)
    assert first.returncode == 130, out[-3000:]
    resumed = cli("resume", "tiny", "--storage", "results", cwd=tmp_path)
    out = finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    parents, children = sweep_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert len(children) == RESUMED_TRIALS
    parent = parents[0].data.metrics
    trials = sum(run.data.metrics["cost_usd"] for run in children)
    assert trials > 0 and parent["idle_usd"] >= 0
    assert parent["cost_usd"] == pytest.approx(trials + parent["idle_usd"], rel=0.05), (parent, trials)
