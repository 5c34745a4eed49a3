"""Resume: a sweep whose driver was Ctrl-C'ed continues from its storage into the same MLflow runs.

A driver killed with SIGKILL mid-sweep is the chaos suite's (tests/chaos/test_driver_loss.py, on a cluster).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cli_runs import cli, finish, run_cli
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis
from resume_runs import (
    RESUMED_TRIALS,
    assert_resumed_into_the_same_runs,
    interrupted_after_a_result,
    resumable_sweep,
    sweep_runs,
)
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.storage import find_sweep, load_resume_info, save_resume_info
from lstm_ray.sweep.resume import checkpoint_epochs
from lstm_ray.sweep.trainable import load_checkpoint_state


def test_a_name_finds_its_latest_sweep_folder(tmp_path, tiny_config):
    for name in ("tiny-20260101-000000", "tiny-20260301-000000", "tiny-long-20260401-000000"):
        save_resume_info(str(tmp_path), name, tiny_config, "run-" + name)
    (tmp_path / "tiny-20260501-000000").mkdir()  # not a sweep lstm-ray wrote
    latest = find_sweep("tiny", str(tmp_path))
    assert latest == str(tmp_path / "tiny-20260301-000000")
    assert find_sweep(latest, "elsewhere") == latest
    cfg, parent, cwd = load_resume_info(latest)
    assert cfg == tiny_config and parent == "run-tiny-20260301-000000" and cwd == os.getcwd()


def test_an_unknown_sweep_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'nothing' is neither a sweep folder nor the name"):
        find_sweep("nothing", str(tmp_path))


def test_resuming_an_unknown_sweep_is_one_error_line_before_ray(tmp_path):
    done = run_cli("resume", "nothing", "--storage", str(tmp_path))
    assert done.returncode == 2 and "NO_RAY" in done.stderr
    assert done.stderr.splitlines()[0].startswith("error: NAME_OR_PATH: 'nothing' is neither a sweep folder")


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    resumable_sweep(path, "sqlite:///mlflow.db", "results")  # relative: resume runs where tune did
    return path


ENDED_TRIALS = """
    SELECT count(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid
    WHERE tags.key = 'lstm_ray.role' AND tags.value = 'trial' AND runs.status != 'RUNNING'
"""


def wait_for_ended_trials(tmp_path, proc: subprocess.Popen, count: int) -> None:
    # Read-only SQL while the driver writes: an MlflowClient here would race it at creating the tables.
    for _ in range(600):
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        try:
            with sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True) as db:
                if db.execute(ENDED_TRIALS).fetchone()[0] >= count:
                    return
        except sqlite3.OperationalError:  # no database or no tables yet
            pass
        time.sleep(0.5)
    raise AssertionError("no trial ended within 5 minutes")


@pytest.mark.slow
def test_ctrl_c_saves_the_sweep_and_resume_finishes_it(tmp_path, sweep_file):
    first = cli("tune", str(sweep_file), cwd=tmp_path)
    try:
        wait_for_ended_trials(tmp_path, first, count=1)
        os.kill(first.pid, signal.SIGINT)
        out = finish(first)
    finally:
        finish(first)
    assert first.returncode == 130 and "lstm-ray resume" in out, out[-3000:]
    assert out.startswith("Sweep tiny: starting Ray and MLflow ...\n"), out[:3000]  # at once, before Ray's lines
    assert "Resume experiment with" not in out and "Token authentication is enabled" not in out, out[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parents, _ = sweep_runs(client)
    assert parents[0].info.status == "KILLED"
    assert_no_run_left_running(client)
    (folder,) = (tmp_path / "results").iterdir()
    out = finish(cli("resume", str(folder), cwd=tmp_path))
    assert_resumed_into_the_same_runs(client, out)
    last_progress = [line for line in out.splitlines() if " trials done: " in line][-1]
    assert f"] {RESUMED_TRIALS}/{RESUMED_TRIALS} trials done: " in last_progress, out[-3000:]  # earlier trials count
    assert parse_config(yaml.safe_load(sweep_file.read_text())).name == "tiny"


@pytest.mark.slow
def test_a_checkpoint_deleted_after_the_last_snapshot_does_not_fail_its_trial(tmp_path, sweep_file):
    """Tune deletes a surplus checkpoint as soon as a newer one comes but snapshots the experiment later: a driver
    killed in between leaves a snapshot naming a deleted checkpoint. Made here after a Ctrl-C by moving an
    unfinished trial's latest checkpoint on by one number, as Tune's next checkpoint and deletion would."""
    raw = yaml.safe_load(sweep_file.read_text())
    raw["train"]["max_epochs"] = 30  # trials still training at the interrupt
    sweep_file.write_text(yaml.safe_dump(raw))
    first, out = interrupted_after_a_result(sweep_file, tmp_path)  # the first trial has a checkpoint, 29 epochs to go
    assert first.returncode == 130, out[-3000:]
    (folder,) = (tmp_path / "results").iterdir()
    unfinished = [t for t in ExperimentAnalysis(str(folder)).trials if t.status != "TERMINATED" and t.checkpoint]
    assert unfinished, "no trial was interrupted after its first checkpoint"
    restored_from = {t.trial_id: load_checkpoint_state(t.checkpoint)["epoch"] for t in unfinished}
    assert checkpoint_epochs(ExperimentAnalysis(str(folder)).trials) == restored_from
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    stopped = assert_no_run_left_running(client)
    assert unfinished[0].trial_id in stopped  # KILLED while it trained, to be continued
    lost = Path(unfinished[0].checkpoint.path)
    for unseen in (p for p in lost.parent.glob("checkpoint_*") if p.name > lost.name):
        shutil.rmtree(unseen)  # saved by the trial after Tune's last snapshot, its result never seen by the driver
    lost.rename(lost.with_name(f"checkpoint_{int(lost.name.removeprefix('checkpoint_')) + 1:06d}"))

    out = finish(cli("resume", str(folder), cwd=tmp_path))
    assert f"{unfinished[0].trial_id}: Tune's last snapshot names {lost.name}, deleted" in out, out[-3000:]
    assert "0 failed)" in out, out[-3000:]
    assert_resumed_into_the_same_runs(client, out)
    truth = reported(sweep_folder(out))
    history = logged(client, parent_run_id(out), truth)
    epochs = {trial: [e for e, _ in metrics["train_loss"]] for trial, metrics in history.items()}
    assert epochs_once_each(history), (unfinished[0].trial_id, epochs)


def assert_no_run_left_running(client: MlflowClient) -> set[str]:
    """After a Ctrl-C: no trial's run is left RUNNING; those that were training are KILLED and tagged to continue
    on `lstm-ray resume`. Returns their trial ids."""
    _, children = sweep_runs(client)
    assert not [r for r in children if r.info.status == "RUNNING"]
    killed = [r for r in children if r.info.status == "KILLED"]
    assert all(r.data.tags.get("lstm_ray.resumes") == "true" for r in killed)
    assert all("lstm-ray resume" in r.data.tags["lstm_ray.stop_reason"] for r in killed)
    return {r.data.tags["lstm_ray.trial_id"] for r in killed}


@pytest.mark.slow
def test_an_untracked_sweep_resumes_without_mlflow(tmp_path):
    sweep_file = tmp_path / "tiny.yaml"
    resumable_sweep(sweep_file, "sqlite:///mlflow.db", "results", keep_checkpoints=1)  # watched in storage
    raw = yaml.safe_load(sweep_file.read_text())
    raw["tracking"]["enabled"] = False
    sweep_file.write_text(yaml.safe_dump(raw))
    first, out = interrupted_after_a_result(sweep_file, tmp_path)
    assert first.returncode == 130 and "lstm-ray resume" in out, out[-3000:]
    resumed = cli("resume", "tiny", "--storage", "results", cwd=tmp_path)
    out = finish(resumed)
    assert resumed.returncode == 0 and "MLflow: off (tracking.enabled: false)" in out, out[-3000:]
    assert f"{RESUMED_TRIALS} trials in" in out and "mlflow ui" not in out
    assert not (tmp_path / "mlflow.db").exists()
