"""How a trial's run reads in the MLflow UI: a trial that ended as planned is FINISHED (its outcome tag says how),
and a stopped sweep's trials are KILLED until a resume continues them in the same runs. The callbacks are driven
with Tune's own Trial objects against a real SQLite store; tests/sweep/test_resume.py stops a real sweep."""

from __future__ import annotations

import pickle

import pytest
from ray.tune.experiment import Trial

from lstm_ray.tracking.callbacks import TrialLogger
from lstm_ray.tracking.runs import connect
from lstm_ray.tracking.sweep import SweepTracker

MAX_EPOCHS = 4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module: creating its tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def logger(store, request):
    client = connect(store)
    experiment_id = client.create_experiment(request.node.name)
    parent = client.create_run(experiment_id).info.run_id
    return TrialLogger(store, experiment_id, parent, MAX_EPOCHS, rungs=(1, 2))


def trial(trial_id: str) -> Trial:
    return Trial("train_trial", config={"train": {"lr": 0.01}}, trial_id=trial_id, stub=True)


def train(logger: TrialLogger, t: Trial, epochs: range) -> None:
    """Report `epochs` of `t` as Tune would: the trial's last result first, then the callback."""
    for epoch in epochs:
        result = {"epoch": epoch, "train_loss": 1.0 / epoch, "val_rmse": 2.0 / epoch}
        t.update_last_result(result)
        logger.on_trial_result(epoch, [t], t, result)


def run_of(logger: TrialLogger, trial_id: str):
    outbox = logger.start()
    assert outbox.flush(60)
    return outbox.client.get_run(outbox.run_ids[trial_id])


def test_a_trial_the_scheduler_stopped_ends_finished_and_tagged_stopped_early(logger):
    stopped = trial("stopped")
    logger.on_trial_start(0, [stopped], stopped)
    train(logger, stopped, range(1, 3))
    logger.on_trial_complete(2, [stopped], stopped)
    run = run_of(logger, "stopped")
    assert run.info.status == "FINISHED"
    assert run.data.tags["lstm_ray.outcome"] == "stopped_early" and run.data.tags["lstm_ray.rung_reached"] == "2"
    assert run.data.tags["lstm_ray.stop_reason"] == "stopped by the scheduler at epoch 2"
    assert "lstm_ray.resumes" not in run.data.tags


def test_a_trial_recovered_from_the_checkpoint_before_its_last_result_logs_each_epoch_once(logger):
    recovered = trial("recovered")
    logger.on_trial_start(0, [recovered], recovered)
    train(logger, recovered, range(1, 4))
    logger.on_trial_recover(3, [recovered], recovered)  # its node died before Tune registered epoch 3's checkpoint
    logger.on_trial_start(4, [recovered], recovered)
    again = {"epoch": 3, "train_loss": 9.0, "val_rmse": 9.0}  # epoch 3 trained again from epoch 2's checkpoint
    recovered.update_last_result(again)
    logger.on_trial_result(4, [recovered], recovered, again)
    train(logger, recovered, range(4, MAX_EPOCHS + 1))
    logger.on_trial_complete(5, [recovered], recovered)
    run = run_of(logger, "recovered")
    history = logger.start().client.get_metric_history(run.info.run_id, "val_rmse")
    assert sorted((m.step, m.value) for m in history) == [(epoch, 2.0 / epoch) for epoch in range(1, MAX_EPOCHS + 1)]
    assert run.info.status == "FINISHED" and run.data.tags["lstm_ray.outcome"] == "completed"


def test_a_stopped_sweep_ends_its_training_trials_killed_and_a_resume_continues_them(logger):
    done, running = trial("done"), trial("running")
    for t in (done, running):
        logger.on_trial_start(0, [done, running], t)
    train(logger, done, range(1, MAX_EPOCHS + 1))
    logger.on_trial_complete(4, [done, running], done)
    train(logger, running, range(1, 3))
    saved = pickle.dumps(logger)  # Tune's snapshot of its callbacks, as `Tuner.restore` brings them back
    SweepTracker(logger.start().client, logger.parent_run_id, logger).finish({}, {}, status="KILLED")  # Ctrl-C

    client = connect(logger.tracking_uri)
    runs = {r.data.tags["lstm_ray.trial_id"]: r for r in children(client, logger)}
    assert runs["done"].info.status == "FINISHED" and "lstm_ray.resumes" not in runs["done"].data.tags
    killed = runs["running"]
    assert killed.info.status == "KILLED" and killed.data.tags["lstm_ray.resumes"] == "true"
    reason = "the sweep stopped at epoch 2; `lstm-ray resume` continues this run"
    assert killed.data.tags["lstm_ray.stop_reason"] == reason and killed.data.tags["lstm_ray.epochs"] == "2"
    assert client.get_run(logger.parent_run_id).info.status == "KILLED"

    restored = pickle.loads(saved)
    done.set_status(Trial.TERMINATED)
    restored.continue_runs([done, running], {"running": [{"epoch": 1.0}, {"epoch": 2.0}]})
    reopened = client.get_run(killed.info.run_id)
    assert reopened.info.status == "RUNNING" and "lstm_ray.resumes" not in reopened.data.tags
    restored.on_trial_start(2, [done, running], running)
    train(restored, running, range(1, MAX_EPOCHS + 1))  # epochs 1-2 trained again from an older checkpoint
    restored.on_trial_complete(4, [done, running], running)
    finished = run_of(restored, "running")
    assert finished.info.run_id == killed.info.run_id and finished.info.status == "FINISHED"
    assert finished.data.tags["lstm_ray.outcome"] == "completed" and "lstm_ray.resumes" not in finished.data.tags
    steps = [m.step for m in client.get_metric_history(finished.info.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4]
    assert len(children(client, logger)) == 2


def test_a_snapshot_that_outran_the_stored_results_loses_no_epoch(logger):
    """The driver died while Tune uploaded its snapshot: the snapshot's last result of each trial is one epoch past
    the results stored with it and sent to MLflow. A trial that trains that epoch again logs it then; one that
    will not (finished, or restored from that epoch's checkpoint) logs the snapshot's copy."""
    retrains, restored_at_last, finished = trials = [trial("retrains"), trial("restored_at_last"), trial("finished")]
    for t, epochs in zip(trials, (2, 2, 3), strict=True):
        logger.on_trial_start(0, trials, t)
        train(logger, t, range(1, epochs + 1))
        t.update_last_result({"epoch": epochs + 1, "train_loss": 1.0 / (epochs + 1), "val_rmse": 2.0 / (epochs + 1)})
    finished.set_status(Trial.TERMINATED)
    saved = {t.trial_id: [{"epoch": float(e)} for e in range(1, 3)] for t in trials}
    assert logger.start().flush(60)

    resumed = pickle.loads(pickle.dumps(logger))
    resumed.continue_runs(trials, saved, {"retrains": 2, "restored_at_last": 3})
    train(resumed, retrains, range(3, MAX_EPOCHS + 1))
    train(resumed, restored_at_last, range(4, MAX_EPOCHS + 1))
    for t in trials[:2]:
        resumed.on_trial_complete(MAX_EPOCHS, trials, t)
    client = resumed.start().client
    for t in trials:
        run = run_of(resumed, t.trial_id)
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_rmse"))
        assert history == [(epoch, 2.0 / epoch) for epoch in range(1, MAX_EPOCHS + 1)], t.trial_id
        assert run.info.status == "FINISHED" and run.data.tags["lstm_ray.outcome"] == "completed"


def children(client, logger: TrialLogger) -> list:
    return client.search_runs([logger.experiment_id], f"tags.`mlflow.parentRunId` = '{logger.parent_run_id}'")
