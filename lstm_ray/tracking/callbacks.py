"""The Ray Tune callbacks on the sweep's driver: trial events become child-run writes on the outbox.

    logger = TrialLogger(tracking_uri, experiment_id, parent_run_id, max_epochs, rungs=(1, 3))
    Tuner(..., run_config=RunConfig(callbacks=[logger]))    # one child run per trial, epochs as steps

`OutcomeCounter` only counts how trials ended: all a sweep keeps with `tracking.enabled: false`. Callbacks never
block Tune's event loop: they append to the ordered outbox (`outbox.py`), which one background thread sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT
from ray import tune

from lstm_ray import outcomes
from lstm_ray.tracking.outbox import Outbox, Write, param_value
from lstm_ray.tracking.runs import (
    TAG_CHANGED,
    TAG_EPOCHS,
    TAG_NODE,
    TAG_OUTCOME,
    TAG_PHASE,
    TAG_RESUMES,
    TAG_RUNG,
    TAG_STOP_REASON,
    child_runs,
    connect,
    last_logged_epoch,
)

log = logging.getLogger(__name__)
EPOCH_SECONDS = "epoch_seconds"  # a trial run's per-epoch metric: how long the epoch took (`lstm-ray replay`'s clock)


class OutcomeCounter(tune.Callback):
    """Counts how trials ended (completed, stopped early, failed): all a sweep keeps when tracking is off."""

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs
        self.outcome_counts = {outcomes.COMPLETED: 0, outcomes.STOPPED_EARLY: 0, outcomes.FAILED: 0}

    def get_state(self) -> dict[str, Any]:
        """Saved by Tune with the experiment, so a resumed sweep keeps counting its earlier trials."""
        return {"outcome_counts": dict(self.outcome_counts)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.outcome_counts.update(state["outcome_counts"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.outcome_counts[outcomes.outcome_of(trial.last_result, self.max_epochs, errored=False)] += 1

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.outcome_counts[outcomes.FAILED] += 1


class TrialLogger(OutcomeCounter):
    """Ray Tune callback turning trial events into child-run writes on the outbox (never blocking).

    Tune pickles its callbacks with the experiment so `Tuner.restore` can bring them back; the logger
    therefore keeps only plain state and (re)starts its outbox in `setup`, re-finding the child runs a
    previous driver created so a resumed trial continues its own run.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        max_epochs: int,
        *,
        rungs: tuple[int, ...] = (),
        git_commit: str = "",
        phase: str = "",
    ):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        super().__init__(max_epochs)
        self.rungs, self.git_commit, self.phase = tuple(rungs), git_commit, phase
        self.nodes: dict[str, str] = {}  # trial id -> the node last tagged
        self.configs: dict[str, dict[str, Any]] = {}  # trial id -> the hyperparameters last logged
        self.logged_through: dict[str, int] = {}  # resumed or recovered trial id -> the last epoch its run holds
        # Set by the sweep: a trial's (trainable parameters, training windows) from its config, logged with its
        # end; not saved with the experiment (it holds the data), so a restored sweep logs them at its end.
        self.sizes: Callable[[dict[str, Any]], tuple[float, float]] | None = None
        self.sized: set[str] = set()  # trial ids whose end write, queued by this process, carries its sizes
        self.live: dict[str, Any] = {}  # trial id -> the trial, while its run is open in this process
        self.stop_reasons: dict[str, str] = {}  # trial id -> why a stopper ended it (a cost budget's, shared)
        self.outbox: Outbox | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A dead driver's queued end writes may never have been sent: a resumed sweep logs every trial's sizes.
        return self.__dict__ | {"outbox": None, "sizes": None, "sized": set(), "live": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"live": {}, "stop_reasons": {}} | state)  # a sweep saved before these resumes too

    def setup(self, **info: Any) -> None:
        self.start()

    def start(self) -> Outbox:
        if self.outbox is None:
            client = connect(self.tracking_uri)
            self.outbox = Outbox(client, self.experiment_id, self.parent_run_id)
            try:
                self.outbox.run_ids.update(child_runs(client, self.experiment_id, self.parent_run_id))
            except MlflowException as err:  # a resume while the server is down: trials not yet restored log anew
                log.warning("could not list the sweep's child runs (%s); resumed trials may get new runs", err)
        return self.outbox

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        outbox = self.start()
        self.live[trial.trial_id] = trial
        if trial.trial_id in outbox.run_ids or trial.trial_id in outbox.started:
            return  # a restored or resumed trial keeps logging into its existing run
        outbox.started.add(trial.trial_id)
        outbox.put(self._start_write(trial))

    def _start_write(self, trial: Any) -> Write:
        params = [Param(k, param_value(v)) for k, v in sorted(flatten(trial.config).items())]
        tags = [RunTag(MLFLOW_GIT_COMMIT, self.git_commit)] if self.git_commit else []
        tags += [RunTag(TAG_PHASE, self.phase)] if self.phase else []
        return Write("start", trial.trial_id, params=params, tags=tags, run_name=str(trial))

    def continue_runs(
        self, trials: list[Any], saved: dict[str, list[dict[str, Any]]], continues_from: dict[str, int] | None = None
    ) -> None:
        """Bring the child runs of a sweep whose driver died in step with Tune's last snapshot of it.

        `trials` are the snapshot's trials, `saved` each trial's results as Tune stored them, `continues_from` the
        epoch of the checkpoint each unfinished trial restores from. The dead driver's outbox may have sent epochs
        past that point (the resumed trial trains them again: they are not logged twice), or not yet sent epochs
        or the end of a trial that Tune holds (sent now). The runs a stopped sweep ended KILLED (`interrupt`) are
        RUNNING again.
        """
        outbox = self.start()
        for trial in trials:
            ended = trial.status in ("TERMINATED", "ERROR")
            run_id = outbox.run_ids.get(trial.trial_id)
            start_from = 0 if ended else (continues_from or {}).get(trial.trial_id, 0)
            last = int((trial.last_result or {}).get("epoch", 0))
            if run_id is None and (last or start_from or ended):  # its run was still queued when the driver died
                outbox.started.add(trial.trial_id)
                outbox.put(self._start_write(trial))
            open_run = run_id is None or _reopen(outbox.client, run_id)
            logged = last_logged_epoch(outbox.client, run_id) if run_id else 0
            unsent = _unsent_results(trial, saved.get(trial.trial_id, []), logged, start_from, ended)
            for epoch in sorted(unsent):
                outbox.put(Write("log", trial.trial_id, metrics=trial_metrics(unsent[epoch])))
            self.logged_through[trial.trial_id] = max(logged, start_from, *unsent)
            if ended and open_run:
                errored = trial.status == "ERROR"
                outcome = outcomes.outcome_of(trial.last_result, self.max_epochs, errored)
                outbox.put(self._end_write(trial, outcome, failure_reason(trial) if errored else ""))
            elif not ended and (run_id or trial.trial_id in outbox.started):
                self.live[trial.trial_id] = trial  # stopped again before it restarts: `interrupt` ends it too

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune registers a result's checkpoint in a second call to the trial's actor: a node lost between the two
        # restores the checkpoint before, and the trial trains its last reported epoch again.
        epoch = int((trial.last_result or {}).get("epoch", 0))
        self.logged_through[trial.trial_id] = max(self.logged_through.get(trial.trial_id, 0), epoch)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if int(result.get("epoch", 0)) <= self.logged_through.get(trial.trial_id, 0):
            return  # trained again after a restore from an older checkpoint: its run holds this epoch already
        node = f"{result.get('hostname', '?')} ({result.get('node_ip', '?')})"
        tags = [] if self.nodes.get(trial.trial_id) == node else [RunTag(TAG_NODE, node)]
        self.nodes[trial.trial_id] = node
        metrics = trial_metrics(result)
        # PBT changes a running trial's hyperparameters; params are immutable, so the new values are logged as
        # metrics (numbers) or tags of the same name, from the epoch they apply.
        config = flatten(result.get("config") or trial.config)  # the values this epoch trained with
        before = self.configs.setdefault(trial.trial_id, config)
        changed = {k: v for k, v in config.items() if before.get(k) != v}
        self.configs[trial.trial_id] = config
        step, now = int(result.get("epoch", 0)), int(time.time() * 1000)
        for key, value in changed.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(key, float(value), now, step))
            else:
                tags.append(RunTag(f"{TAG_CHANGED}{key}", f"{value} from epoch {step}"))
        self.start().put(Write("log", trial.trial_id, metrics=metrics, tags=tags))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.outcome_of(trial.last_result, self.max_epochs, errored=False), "")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.FAILED, failure_reason(trial))

    def _end(self, trial: Any, outcome: str, reason: str) -> None:
        self.outcome_counts[outcome] += 1
        self.live.pop(trial.trial_id, None)
        self.start().put(self._end_write(trial, outcome, reason))

    def interrupt(self) -> None:
        """End the runs of the trials still training when the sweep stopped (Ctrl-C, `lstm-ray stop`, an error)
        KILLED, tagged `lstm_ray.resumes`: `lstm-ray resume` continues each in the same run (`continue_runs`)."""
        outbox = self.start()
        for trial_id, trial in sorted(self.live.items()):
            epoch = int((trial.last_result or {}).get("epoch", 0))
            reason = f"the sweep stopped at epoch {epoch}; `lstm-ray resume` continues this run"
            tags = [RunTag(TAG_RESUMES, "true"), RunTag(TAG_STOP_REASON, reason), RunTag(TAG_EPOCHS, str(epoch))]
            outbox.put(Write("end", trial_id, tags=tags, status="KILLED"))
        self.live.clear()

    def _end_write(self, trial: Any, outcome: str, reason: str) -> Write:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        reason = reason or self.stop_reasons.get(trial.trial_id) or outcomes.stop_reason(trial.last_result, outcome)
        tags = [
            RunTag(TAG_OUTCOME, outcome),
            RunTag(TAG_STOP_REASON, reason[:5000]),
            RunTag(TAG_EPOCHS, str(epoch)),
            RunTag(TAG_RUNG, str(max([r for r in self.rungs if r <= epoch], default=0))),
        ]
        metrics = []
        if self.sizes is not None and epoch > 0:  # a trial failing before its first epoch may not even build
            now = int(time.time() * 1000)
            sizes = zip(("model_parameters", "train_windows"), self.sizes(trial.config), strict=True)
            metrics = [Metric(key, value, now, 0) for key, value in sizes if np.isfinite(value)]
            self.sized.add(trial.trial_id)
        return Write("end", trial.trial_id, metrics=metrics, tags=tags, status=outcomes.MLFLOW_STATUS[outcome])


def _unsent_results(
    trial: Any, saved: list[dict[str, Any]], logged: int, start_from: int, ended: bool
) -> dict[int, dict[str, Any]]:
    """Epoch -> result, for the epochs past `logged` (the last its run holds) that Tune stored, up to the later of
    the snapshot's last result and the checkpoint the trial restores from (`start_from`).

    Tune uploads a snapshot as files, one by one: a driver killed mid-upload can leave a snapshot whose last
    result the stored results lack; the snapshot's own copy stands in for it when the trial will not train that
    epoch again."""
    last = int((trial.last_result or {}).get("epoch", 0))
    unsent = {int(r["epoch"]): r for r in saved if logged < r["epoch"] <= max(last, start_from)}
    if logged < last and last not in unsent and (ended or last <= start_from):
        unsent[last] = trial.last_result
    return unsent


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def trial_metrics(result: dict[str, Any]) -> list[Metric]:
    """The trainable's own metrics (train_*, val_* and a measured `latency_ms`) and the epoch's seconds
    (EPOCH_SECONDS, Tune's time_this_iter_s), stepped by epoch; none of Ray's other bookkeeping."""
    step = int(result.get("epoch", result.get("training_iteration", 0)))
    now = int(result.get("timestamp", time.time()) * 1000)
    metrics = [
        Metric(key, float(value), now, step)
        for key, value in result.items()
        if (key.startswith(("train_", "val_")) or key == "latency_ms")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]
    seconds = result.get("time_this_iter_s")
    if isinstance(seconds, (int, float)) and np.isfinite(seconds):
        metrics.append(Metric(EPOCH_SECONDS, float(seconds), now, step))
    return metrics


def _reopen(client: Any, run_id: str) -> bool:
    """Whether a resumed trial's run is open: RUNNING (its driver died), or ended by `interrupt` and made RUNNING
    again here (its `lstm_ray.resumes` tag removed); False for a run that ended for good."""
    run = client.get_run(run_id)
    if TAG_RESUMES not in run.data.tags:
        return run.info.status == "RUNNING"
    client.delete_tag(run_id, TAG_RESUMES)
    client.update_run(run_id, status="RUNNING")
    return True


def failure_reason(trial: Any) -> str:
    """Why the trial failed, in one line (e.g. 'DivergedError: train loss became nan at epoch 3')."""
    text = ""
    path = getattr(trial, "error_file", None) or ""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        text = str(getattr(trial, "error_msg", "") or "")
    return outcomes.failure_summary(text)
