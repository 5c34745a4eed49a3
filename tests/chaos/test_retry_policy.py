"""Retries only where a retry can help, and a checkpoint on a spot node's termination notice.

Unit level: which failures are retried (property-based over exception kinds and the ways Ray and Tune wrap
them), an epoch interrupted between batches resumes exactly, and the Ray Tune behaviour `retry_policy.py`
relies on, pinned in an in-process Ray. Chaos level (the local multi-node cluster, `lstm-ray tune` as the
driver): a diverging trial fails once while resources.max_failures is 2, and a worker node sent SIGTERM (which
Ray 2.60 turns into a drain: the termination notice) has its trial save at once and resume on another node.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from ray.air._internal.util import StartTraceback
from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError, RayTaskError, WorkerCrashedError
from ray.tune.error import TuneError
from tracked_metrics import parent_run_id, sweep_folder

from chaos.sweeps import run_cli, tune_rows, wait_until, write_sweep
from lstm_ray.config import ModelConfig, TrainConfig
from lstm_ray.errors import ConfigError, DataError
from lstm_ray.sweep import retry_policy
from lstm_ray.sweep.preemption import TrialPreempted, newer_state
from lstm_ray.sweep.retry_policy import DETERMINISTIC, PREEMPTED, RETRIED, failure_kind
from lstm_ray.sweep.trainable import TrialOutOfMemory
from lstm_ray.train.models import build_model
from lstm_ray.train.training import DivergedError, Trainer, TrainingInterrupted, seed_everything

# One maker per kind of failure a trial meets, each given a message.
MAKERS = {
    DETERMINISTIC: [
        DivergedError,
        lambda text: ConfigError("model.proj_size", text),
        lambda text: DataError("data.source", text),
        TrialOutOfMemory,
    ],
    PREEMPTED: [TrialPreempted],
    RETRIED: [
        lambda text: RayActorError(),  # the worker or its node died
        lambda text: WorkerCrashedError(),
        NodeDiedError,
        OutOfMemoryError,  # Ray's memory monitor: the node ran low, whoever used the memory
        MemoryError,  # not our TrialOutOfMemory: a plain one is not known to repeat
        ValueError,
        RuntimeError,
        KeyError,
        TuneError,
    ],
}


def _ray_task_error(cause: BaseException) -> BaseException:
    return RayTaskError("train", "Traceback (most recent call last): ...", cause)


def _as_instance_of_cause(cause: BaseException) -> BaseException:
    return _ray_task_error(cause).as_instanceof_cause()  # what ray.get raises: both RayTaskError and the cause


def _start_traceback(cause: BaseException) -> BaseException:
    wrapper = StartTraceback()  # Tune's function trainable raises this `from` the trial's exception
    wrapper.__cause__ = cause
    return wrapper


WRAPPINGS = [_ray_task_error, _as_instance_of_cause, _start_traceback]


@st.composite
def failures(draw):
    """(expected kind, the exception as Tune could receive it): any message, wrapped 0-3 times."""
    kind = draw(st.sampled_from(sorted(MAKERS)))
    error = draw(st.sampled_from(MAKERS[kind]))(draw(st.text(max_size=40)))
    for wrap in draw(st.lists(st.sampled_from(WRAPPINGS), max_size=3)):
        error = wrap(error)
    return kind, error


@given(failures())
def test_each_failure_is_classified_by_its_type_however_ray_wraps_it(failure):
    kind, error = failure
    assert failure_kind(error) == kind


@given(st.sampled_from(["DivergedError: train loss became nan", "ConfigError: x", "TrialOutOfMemory"]))
def test_a_message_that_names_a_deterministic_error_is_not_one(text):
    assert failure_kind(_ray_task_error(RuntimeError(text))) == RETRIED  # by type, never by words


def test_nothing_to_classify_is_retried():
    assert failure_kind(None) == RETRIED


def _trainer(windows, cfg: TrainConfig) -> Trainer:
    seed_everything(0)
    model = build_model(ModelConfig(hidden_size=8, dropout=0.2, num_layers=2), 1, 1, 1)
    return Trainer(model, windows, cfg, device=torch.device("cpu"))


def test_an_epoch_interrupted_between_batches_resumes_exactly(sine_windows):
    cfg, windows = TrainConfig(max_epochs=3, batch_size=16, lr=0.01), sine_windows()
    whole = _trainer(windows, cfg)
    expected = [whole.run_epoch() for _ in range(3)]

    cut = _trainer(windows, cfg)
    cut.run_epoch()
    asked = iter(range(1000))
    cut.interrupt = lambda: next(asked) == 5  # the notice arrives before the 6th batch of epoch 2
    with pytest.raises(TrainingInterrupted):
        cut.run_epoch()
    buffer = io.BytesIO()
    torch.save(cut.state(), buffer)  # as the notice checkpoint is written and read back
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert saved["epoch"] == 1 and saved["resume_at"]["batch"] == 5

    resumed = _trainer(windows, cfg)
    resumed.load_state(saved)
    assert [resumed.run_epoch() for _ in range(2)] == [pytest.approx(m, rel=1e-6) for m in expected[1:]]
    for mine, theirs in zip(resumed.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_the_notice_checkpoint_wins_unless_tune_has_a_later_epoch():
    tune_state, notice = {"epoch": 3}, {"epoch": 3, "resume_at": {"batch": 7}}
    assert newer_state(tune_state, notice) is notice
    assert newer_state({"epoch": 4}, notice) == {"epoch": 4}
    assert newer_state(None, notice) is notice and newer_state(tune_state, None) is tune_state


@pytest.mark.slow
def test_tune_retries_a_lost_worker_but_not_a_deterministic_failure(local_ray, tmp_path):
    """Pins the Ray Tune behaviour retry_policy.py relies on, with max_failures 1, in a real Tune run."""
    from ray import tune

    retry_policy.install()
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def trainable(config):
        count = attempts / config["kind"]
        attempt = len(count.read_text()) + 1 if count.exists() else 1
        count.write_text("x" * attempt)
        if config["kind"] == "diverges":
            raise DivergedError("train loss became nan at epoch 1; lower train.lr or clip harder")
        if config["kind"] == "glitch" and attempt == 1:
            raise ValueError("a glitch nobody knows to repeat")
        if config["kind"] == "worker dies" and attempt == 1:
            os._exit(1)
        if config["kind"] == "preempted" and attempt <= 3:
            raise TrialPreempted("its node is draining")
        tune.report({"score": 1.0})

    kinds = ["diverges", "glitch", "worker dies", "preempted"]
    results = tune.Tuner(
        trainable,
        param_space={"kind": tune.grid_search(kinds)},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "results"), failure_config=tune.FailureConfig(max_failures=1)
        ),
    ).fit()
    ended = {result.config["kind"]: result.error is None for result in results}
    tried = {kind: len((attempts / kind).read_text()) for kind in kinds}
    assert ended == {"diverges": False, "glitch": True, "worker dies": True, "preempted": True}
    assert tried == {"diverges": 1, "glitch": 2, "worker dies": 2, "preempted": 4}  # preemptions use no retry


def failures_logged(trial_folder: Path) -> list[str]:
    """The `Failure # N` entries Tune wrote to the trial's error.txt, one per failed attempt."""
    path = trial_folder / "error.txt"
    return re.findall(r"^Failure # \d+", path.read_text(), re.M) if path.exists() else []


@pytest.mark.chaos
@pytest.mark.slow
def test_a_diverging_trial_fails_once_though_max_failures_is_2(cluster, mlflow_server, tmp_path):
    sweep = write_sweep(
        tmp_path,
        "chaos-no-retry",
        mlflow_server.url,
        data={"window_norm": "none"},  # globally scaled windows, where SGD at lr 10 diverges in epoch 1
        train={"max_epochs": 2, "batch_size": 16, "optimizer": "sgd", "grad_clip": 0.0},
        search={
            "algorithm": "grid",
            "scheduler": "fifo",
            "num_samples": 1,
            "space": {"train.lr": {"grid": [0.01, 10]}},
        },
        resources={"cpu": 1, "max_failures": 2},
    )
    code, out = run_cli(cluster, "tune", str(sweep), cwd=tmp_path)
    assert code == 0 and "(1 completed, 0 stopped early, 1 failed)" in out, out[-3000:]
    folder = sweep_folder(out)
    by_lr = {json.loads((t / "params.json").read_text())["train.lr"]: t for t in folder.iterdir() if t.is_dir()}
    assert failures_logged(by_lr[10]) == ["Failure # 1"]  # no retry: it would diverge again
    assert failures_logged(by_lr[0.01]) == []

    client = MlflowClient(mlflow_server.url)
    parent = client.get_run(parent_run_id(out))
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    failed = [run for run in children if run.info.status == "FAILED"]
    assert len(children) == 2 and len(failed) == 1
    assert "DivergedError: train loss became nan at epoch 1" in failed[0].data.tags["lstm_ray.stop_reason"]


EPOCHS = 30  # Tune copies a trial's result.json to the storage every few seconds: seen by epoch ~9 of these


def _training_on(cluster, node, results: Path) -> dict[str, tuple[int, int]]:
    """Trial id -> (last epoch, pid) of the trials training on `node`, past epoch 1 and well before the end."""
    pids = set(cluster.session_pids()[node.name])
    rows = tune_rows(results)
    return {
        t: (r[-1]["epoch"], r[-1]["pid"])
        for t, r in rows.items()
        if r[-1]["pid"] in pids and 2 <= r[-1]["epoch"] <= EPOCHS - 10
    }


def _checkpoint_of(trial_folder: Path, epoch: int) -> dict:
    for path in trial_folder.glob("checkpoint_*/checkpoint.pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["epoch"] == epoch:
            return state
    raise AssertionError(f"no checkpoint of epoch {epoch} in {trial_folder}")


@pytest.mark.chaos
@pytest.mark.slow
def test_a_sigtermed_nodes_trial_saves_on_the_notice_and_resumes_from_it(cluster, mlflow_server, tmp_path):
    from cli_runs import cli, finish

    # More trials than the workers have CPUs, in batches of 4 (about a second an epoch): some trial is sure to be
    # seen mid-way on a worker, though Tune copies result.json to the storage only every few seconds.
    search = {"algorithm": "random", "scheduler": "fifo", "num_samples": 4, "space": {"train.lr": {"choice": [0.003]}}}
    train = {"max_epochs": EPOCHS, "batch_size": 4}
    storage = {"keep_checkpoints": EPOCHS}
    sweep = write_sweep(tmp_path, "chaos-notice", mlflow_server.url, search=search, train=train, storage=storage)
    live = [w for w in cluster.workers if not w.stopped]
    driver = cli("tune", str(sweep), cwd=tmp_path, env=cluster.client_env())
    try:
        # Whichever worker a trial trains on first: a worker that joined last may not have taken a trial yet.
        victim = wait_until(
            lambda: next((w for w in live if _training_on(cluster, w, tmp_path / "results")), None),
            "a trial trains on a worker",
            driver,
        )
        os.kill(victim.pid, signal.SIGTERM)  # `ray start --block` drains its node, then stops it
        out = finish(driver)
    finally:
        finish(driver)
    deadline = time.monotonic() + 120
    while cluster.session_pids()[victim.name] and time.monotonic() < deadline:
        time.sleep(0.5)
    victim.stopped = True  # the cluster fixture starts a new worker for the next module
    cluster.save()
    assert driver.returncode == 0 and "0 failed" in out, out[-3000:]

    rows = tune_rows(tmp_path / "results")
    victim_pids = {r["pid"] for rs in rows.values() for r in rs if r["epoch"] >= 2}
    moved = {t: rs for t, rs in rows.items() if len({r["pid"] for r in rs}) > 1}
    assert moved, f"no trial moved off {victim.name}: {victim_pids}"
    folder = sweep_folder(out)
    for trial, trial_rows in moved.items():
        first_pid = trial_rows[0]["pid"]
        reached = max(r["epoch"] for r in trial_rows if r["pid"] == first_pid)  # the epoch reached at the signal
        after = [r["epoch"] for r in trial_rows if r["pid"] != first_pid]
        assert after == list(range(reached + 1, EPOCHS + 1)), trial_rows  # nothing trained twice, nothing lost
        (trial_folder,) = folder.glob(f"*{trial}*")
        assert any("TrialPreempted" in line for line in (trial_folder / "error.txt").read_text().splitlines())
        resumed = _checkpoint_of(trial_folder, reached + 1).get("resumed_from")
        # Stopped mid-epoch: the retry continued from the notice checkpoint of that epoch, at its batch. (A notice
        # that came while the epoch's own checkpoint was being written leaves Tune's checkpoint of it to resume.)
        assert resumed is None or resumed["epoch"] == reached, resumed
        assert not (trial_folder / "termination-notice.pt").exists()  # dropped once an epoch checkpoint followed
