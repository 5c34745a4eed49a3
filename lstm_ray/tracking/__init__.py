"""Everything MLflow: a parent run per sweep, a child run per trial, the winner as a raw-row pyfunc model.

    tracker = SweepTracker.start(cfg, config_text)       # parent run (replays earlier spilled writes)
    Tuner(..., run_config=RunConfig(callbacks=[tracker.callback]))
    tracker.log_results(record, results)      # leaderboard, report, checkpoints (tracking.checkpoints)
    tracker.log_model(best_model, input_windows, preprocessing)
    tracker.finish(summary_metrics, tags)

Writes happen on the driver, off Tune's event loop: callbacks only append to an ordered outbox (`outbox.py`)
that one background thread drains in batches. A write that fails (server down) is retried in order until it is
acknowledged; what is still unsent when the sweep ends and `tracking.flush_timeout_s` has passed is spilled to
`<storage.path>/mlflow-outbox/` and sent on the next sweep start, resume or `lstm-ray report`. MLflow's own
HTTP retries are shortened (`CLIENT_DEFAULTS`) so that this loop, not a 4-minute blocking call, is in charge.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_LOGGED_ARTIFACTS, MLFLOW_PARENT_RUN_ID
from ray import tune

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig
from lstm_ray.errors import ConfigError
from lstm_ray.storage import as_uri
from lstm_ray.tracking.outbox import (
    TAG_MODEL_URI,
    TAG_ROLE,
    TAG_TRIAL_ID,
    Outbox,
    Write,
    log_in_batches,
    replay_spilled,
    spill_folder,
)
from lstm_ray.tracking.sqlite_store import seed_store

log = logging.getLogger(__name__)

__all__ = [
    "TAG_MODEL_URI",
    "Outbox",
    "SweepTracker",
    "TrialLogger",
    "child_runs",
    "connect",
    "replay_spilled",
    "start_tracking",
]

TAG_OUTCOME = "lstm_ray.outcome"
TAG_STOP_REASON = "lstm_ray.stop_reason"
TAG_EPOCHS = "lstm_ray.epochs"
TAG_RUNG = "lstm_ray.rung_reached"  # the highest ASHA rung (epoch) the trial got to; 0 below the first
TAG_PHASE = "lstm_ray.phase"  # children of a later Tune run of the same sweep, e.g. "reevaluation"
TAG_NODE = "lstm_ray.node"  # host and IP of the node the trial ran on (its last, after a restore)
PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param value's length
CLIENT_DEFAULTS = {
    # MLflow's own defaults retry for ~4 minutes inside one blocking call; the outbox retries instead.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    # The sweep prints its own progress: no run URLs or download bars between its lines.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def connect(uri: str) -> MlflowClient:
    """A client for `uri` with short HTTP retries and no chatter (an environment variable already set wins)."""
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    seed_store(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


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
        self.logged_through: dict[str, int] = {}  # resumed trial id -> the last epoch its run already holds
        # Set by the sweep: a trial's (trainable parameters, training windows) from its config, logged with its
        # end; not saved with the experiment (it holds the data), so a restored sweep logs them at its end.
        self.sizes: Callable[[dict[str, Any]], tuple[float, float]] | None = None
        self.sized: set[str] = set()  # trial ids whose end write, queued by this process, carries its sizes
        self.outbox: Outbox | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A dead driver's queued end writes may never have been sent: a resumed sweep logs every trial's sizes.
        return self.__dict__ | {"outbox": None, "sizes": None, "sized": set()}

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
        if trial.trial_id in outbox.run_ids or trial.trial_id in outbox.started:
            return  # a restored or resumed trial keeps logging into its existing run
        outbox.started.add(trial.trial_id)
        outbox.put(self._start_write(trial))

    def _start_write(self, trial: Any) -> Write:
        params = [Param(k, _param_value(v)) for k, v in sorted(flatten(trial.config).items())]
        tags = [RunTag(MLFLOW_GIT_COMMIT, self.git_commit)] if self.git_commit else []
        tags += [RunTag(TAG_PHASE, self.phase)] if self.phase else []
        return Write("start", trial.trial_id, params=params, tags=tags, run_name=str(trial))

    def continue_runs(
        self, trials: list[Any], saved: dict[str, list[dict[str, Any]]], resumed_from: dict[str, int] | None = None
    ) -> None:
        """Bring the child runs of a sweep whose driver died in step with Tune's last snapshot of it.

        `trials` are the snapshot's trials, `saved` each trial's results as Tune stored them, `resumed_from` the
        epoch a trial continues from when that is past the snapshot (its checkpoint there was deleted). The dead
        driver's outbox may have sent epochs past that point (the resumed trial trains them again: they are not
        logged twice), or not yet sent epochs or the end of a trial that Tune holds (sent now).
        """
        outbox = self.start()
        for trial in trials:
            resume_at = max(int((trial.last_result or {}).get("epoch", 0)), (resumed_from or {}).get(trial.trial_id, 0))
            ended = trial.status in ("TERMINATED", "ERROR")
            run_id = outbox.run_ids.get(trial.trial_id)
            if run_id is None and (resume_at or ended):  # its run was still queued when the driver died
                outbox.started.add(trial.trial_id)
                outbox.put(self._start_write(trial))
            logged = _last_logged_epoch(outbox.client, run_id) if run_id else 0
            latest = {int(r["epoch"]): r for r in saved.get(trial.trial_id, []) if logged < r["epoch"] <= resume_at}
            for epoch in sorted(latest):
                outbox.put(Write("log", trial.trial_id, metrics=trial_metrics(latest[epoch])))
            self.logged_through[trial.trial_id] = max(logged, resume_at)
            if ended and (run_id is None or outbox.client.get_run(run_id).info.status == "RUNNING"):
                errored = trial.status == "ERROR"
                outcome = outcomes.outcome_of(trial.last_result, self.max_epochs, errored)
                outbox.put(self._end_write(trial, outcome, failure_reason(trial) if errored else ""))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if int(result.get("epoch", 0)) <= self.logged_through.get(trial.trial_id, 0):
            return  # trained again after a resume from an older snapshot: its run holds this epoch already
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
                tags.append(RunTag(f"lstm_ray.changed.{key}", f"{value} from epoch {step}"))
        self.start().put(Write("log", trial.trial_id, metrics=metrics, tags=tags))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.outcome_of(trial.last_result, self.max_epochs, errored=False), "")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.FAILED, failure_reason(trial))

    def _end(self, trial: Any, outcome: str, reason: str) -> None:
        self.outcome_counts[outcome] += 1
        self.start().put(self._end_write(trial, outcome, reason))

    def _end_write(self, trial: Any, outcome: str, reason: str) -> Write:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        reason = reason or outcomes.stop_reason(trial.last_result, outcome)
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


@dataclass
class SweepTracker:
    """The parent run of one sweep and the callback logging its trials."""

    client: MlflowClient
    parent_run_id: str
    callback: TrialLogger
    cfg: ExperimentConfig | None = None
    model_uri: str = ""  # the winner's model URI once logged ("" while the server is unreachable)
    staging: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lstm-ray-tracking-")))
    _deadline: float | None = None
    _finished: bool = False

    @classmethod
    def start(cls, cfg: ExperimentConfig, config_text: str) -> SweepTracker:
        """Create the parent run (raises ConfigError naming tracking.uri when the server cannot be reached),
        then send what earlier sweeps spilled into the same storage."""
        from lstm_ray.search.fidelity import asha_rungs

        client = connect(cfg.tracking.uri)
        commit = git_commit()
        try:
            experiment = client.get_experiment_by_name(cfg.experiment_name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment_name)
            tags = {TAG_ROLE: "sweep", "lstm_ray.config_name": cfg.name}
            tags |= {MLFLOW_GIT_COMMIT: commit} if commit else {}
            parent = client.create_run(experiment_id, run_name=f"{cfg.name}-sweep", tags=tags)
        except MlflowException as err:
            raise ConfigError(
                "tracking.uri",
                f"cannot reach MLflow at {cfg.tracking.uri} ({_short(err)}); start the server "
                "(scripts/mlflow_server.py) or point tracking.uri elsewhere",
            ) from None
        run_id = parent.info.run_id
        log_in_batches(client, run_id, params=sweep_params(cfg))  # the config has over 100 keys
        client.log_text(run_id, config_text, "config.yaml")
        replay_spilled(as_uri(cfg.storage.path), timeout=cfg.tracking.flush_timeout_s)
        search = cfg.search
        max_t = search.max_t or cfg.train.max_epochs
        rungs = tuple(asha_rungs(search.scheduler, search.grace_period, search.reduction_factor, max_t))
        logger = TrialLogger(
            cfg.tracking.uri, experiment_id, run_id, cfg.train.max_epochs, rungs=rungs, git_commit=commit
        )
        return cls(client, run_id, logger, cfg)

    @classmethod
    def reattach(cls, cfg: ExperimentConfig, parent_run_id: str, logger: TrialLogger) -> SweepTracker:
        """The tracker of an interrupted sweep for `lstm-ray resume`: its existing parent run, and the TrialLogger
        Tune restored. Writes an earlier driver spilled are sent first (their parent status among them), then the
        parent is RUNNING again (a killed driver left it RUNNING, Ctrl-C KILLED). Raises ConfigError naming
        tracking.uri when the server cannot be reached."""
        client = connect(cfg.tracking.uri)
        replay_spilled(as_uri(cfg.storage.path), timeout=cfg.tracking.flush_timeout_s)
        try:
            client.update_run(parent_run_id, status="RUNNING")
        except MlflowException as err:
            raise ConfigError(
                "tracking.uri",
                f"cannot reach the sweep's parent run {parent_run_id} at {cfg.tracking.uri} ({_short(err)}); "
                "start the server it was logged to",
            ) from None
        return cls(client, parent_run_id, logger, cfg)

    def forget_trials(self, known: set[str]) -> int:
        """Delete this sweep's trial runs whose trial ids are not in `known`; returns how many.

        A driver killed between two of Tune's experiment snapshots leaves runs of trials the restored sweep
        never heard of; it proposes those trials again, under new ids, so their old runs would be duplicates.
        """
        runs = self.client.search_runs(
            [self.callback.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}'",
            max_results=50000,
        )
        lost = [
            r.info.run_id for r in runs if r.data.tags.get(TAG_TRIAL_ID) not in known and not r.data.tags.get(TAG_PHASE)
        ]
        for run_id in lost:
            self.client.delete_run(run_id)
        return len(lost)

    def trial_logger(self, phase: str) -> TrialLogger:
        """A callback for another Tune run of this sweep (e.g. re-evaluating the best trials): its trials become
        children of the same parent run, tagged `lstm_ray.phase`, sent through the same outbox; its outcome
        counts stay apart from the sweep's."""
        first = self.callback
        logger = TrialLogger(
            first.tracking_uri,
            first.experiment_id,
            self.parent_run_id,
            first.max_epochs,
            rungs=first.rungs,
            git_commit=first.git_commit,
            phase=phase,
        )
        logger.outbox = first.start()
        return logger

    def log_json(self, data: Any, artifact_file: str) -> None:
        """Queue `data` as the JSON artifact `artifact_file` (e.g. "manifest.json") of the parent run."""
        path = Path(tempfile.mkdtemp(dir=self.staging)) / Path(artifact_file).name
        path.write_text(json.dumps(data, indent=2, default=str))
        folder = str(Path(artifact_file).parent).removeprefix(".")
        self.callback.start().put(Write("artifacts", None, source=str(path.parent), artifact_path=folder))

    def log_results(self, record: Any, results: Any) -> None:
        """Queue the leaderboard (table + Parquet), the report (when `tracking.report`) and the checkpoints
        `tracking.checkpoints` asks for. `record` is a `reports.SweepRecord`; `results` Tune's ResultGrid."""
        from lstm_ray.reports import write_report

        outbox = self.callback.start()
        outbox.flush(self._remaining())  # so the leaderboard can name every trial's run
        for trial in record.trials:
            trial.run_id = trial.run_id or outbox.run_ids.get(trial.trial_id, "")
        now = int(time.time() * 1000)
        for trial in [t for t in record.trials if t.trial_id not in self.callback.sized]:
            sizes = {"model_parameters": trial.model_parameters, "train_windows": trial.train_windows}
            metrics = [Metric(k, v, now, 0) for k, v in sizes.items() if np.isfinite(v)]
            if metrics and trial.trial_id in outbox.run_ids:
                outbox.put(Write("log", trial.trial_id, metrics=metrics))
        outbox.put(Write("log", None, metrics=[Metric("train_rows", float(record.train_rows), now, 0)]))
        board = record.leaderboard()
        folder = self.staging / "leaderboard"
        folder.mkdir(parents=True, exist_ok=True)
        board.to_parquet(folder / "leaderboard.parquet", index=False)
        board.to_json(folder / "leaderboard.json", orient="split", index=False)
        tables = [{"path": f"leaderboard.{ext}", "type": "table"} for ext in ("json", "parquet")]
        outbox.put(Write("artifacts", None, source=str(folder)))
        outbox.put(Write("log", None, tags=[RunTag(MLFLOW_LOGGED_ARTIFACTS, json.dumps(tables))]))
        if self.cfg is None or self.cfg.tracking.report:
            outbox.put(
                Write(
                    "artifacts",
                    None,
                    source=str(write_report(record, self.staging / "report").parent),
                    artifact_path="report",
                )
            )
        for trial_id, checkpoint in self._checkpoints(board, results):
            local = checkpoint.to_directory(str(self.staging / "checkpoints" / trial_id))
            outbox.put(Write("artifacts", trial_id, source=local, artifact_path="checkpoint"))

    def log_model(self, model: Any, raw_rows: Any, preprocessing: dict[str, Any], lookback: int) -> None:
        """Queue the winner for the parent run as `model`, a pyfunc predicting from raw rows (`serving.py`),
        registered as `tracking.register_as` when set. `raw_rows` (a DataFrame of rows the model can answer,
        e.g. `serving.raw_example(...)`) becomes its input example and signature.

        `model_uri` holds its URI once `finish` has sent it; it stays "" while the server is unreachable: the
        model then waits with the spilled writes and is logged by the next `replay_spilled`.
        """
        from lstm_ray.tracking.serving import stage_serving_model

        folder = stage_serving_model(self.staging / "model", model, raw_rows, preprocessing, lookback)
        register_as = (self.cfg.tracking.register_as if self.cfg else None) or ""
        self.callback.start().put(Write("model", None, source=str(folder), register_as=register_as))

    def finish(self, metrics: dict[str, float], tags: dict[str, str], status: str = "FINISHED") -> bool:
        """Send every queued write, log the sweep's results and close the parent run.

        Returns False if the server stayed unreachable for `tracking.flush_timeout_s`: the unsent writes are
        then spilled to `<storage.path>/mlflow-outbox/<parent run id>` and sent by the next `replay_spilled`.
        """
        if self._finished:
            return True
        self._finished = True
        outbox = self.callback.start()
        counts = {f"trials_{name}": float(n) for name, n in self.callback.outcome_counts.items()}
        counts["trials_total"] = float(sum(self.callback.outcome_counts.values()))
        now = int(time.time() * 1000)
        outbox.put(
            Write(
                "log",
                None,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics | counts).items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
        )
        outbox.put(Write("end", None, status=status))
        delivered = outbox.close(self._remaining())
        self.model_uri = outbox.model_uri or self.model_uri
        if not delivered and self.cfg is not None:
            folder = outbox.spill(spill_folder(as_uri(self.cfg.storage.path), self.parent_run_id))
            log.warning(
                "MLflow at %s stayed unreachable: %d writes kept in %s; `lstm-ray report %s` or the next sweep "
                "sends them",
                self.client.tracking_uri,
                len(outbox.unsent()),
                folder,
                self.cfg.experiment_name,
            )
        self.callback.outbox = None
        shutil.rmtree(self.staging, ignore_errors=True)
        return delivered

    def _checkpoints(self, board: Any, results: Any) -> list[tuple[str, Any]]:
        """(trial id, best checkpoint) of the trials `tracking.checkpoints` selects, best first."""
        if self.cfg is None:
            return []
        tracking, metric, mode = self.cfg.tracking, self.cfg.search.metric, self.cfg.search.mode
        by_id = {str(r.metrics.get("trial_id")): r for r in results}
        out = []
        for trial_id in checkpoint_trials(board, tracking.checkpoints, tracking.top_k, metric):
            checkpoint = by_id[trial_id].get_best_checkpoint(metric, mode) if trial_id in by_id else None
            if checkpoint is not None:
                out.append((trial_id, checkpoint))
        return out

    def _remaining(self) -> float:
        """Seconds left of the one `tracking.flush_timeout_s` budget shared by every wait at the end."""
        if self._deadline is None:
            timeout = self.cfg.tracking.flush_timeout_s if self.cfg else 120.0
            self._deadline = time.monotonic() + timeout
        return max(0.0, self._deadline - time.monotonic())


def start_tracking(cfg: ExperimentConfig, config_text: str) -> SweepTracker | UntrackedSweep:
    """The sweep's tracker: a `SweepTracker` (parent run created now), or with `tracking.enabled: false` an
    `UntrackedSweep` that never touches MLflow."""
    if not cfg.tracking.enabled:
        return UntrackedSweep(OutcomeCounter(cfg.train.max_epochs))
    return SweepTracker.start(cfg, config_text)


@dataclass
class UntrackedSweep:
    """`SweepTracker`'s interface with `tracking.enabled: false`: outcomes are counted, nothing is written."""

    callback: OutcomeCounter
    parent_run_id: str = ""
    model_uri: str = ""

    def trial_logger(self, phase: str) -> OutcomeCounter:
        return OutcomeCounter(self.callback.max_epochs)

    def log_json(self, data: Any, artifact_file: str) -> None:
        pass

    def log_results(self, record: Any, results: Any) -> None:
        pass

    def log_model(self, model: Any, raw_rows: Any, preprocessing: dict[str, Any], lookback: int) -> None:
        pass

    def finish(self, metrics: dict[str, float], tags: dict[str, str], status: str = "FINISHED") -> bool:
        return True


def checkpoint_trials(board: Any, policy: str, top_k: int, metric: str) -> list[str]:
    """Trial ids whose best checkpoint goes to MLflow, best first: none, the best, the top_k, or all scored
    trials (`board` is a `SweepRecord.leaderboard()`, already best first; unscored trials never)."""
    if policy == "none" or board.empty:
        return []
    scored = list(board.loc[np.isfinite(board[f"best_{metric}"].astype(float)), "trial_id"])
    return {"best": scored[:1], "top_k": scored[:top_k]}.get(policy, scored)


def git_commit(folder: str | None = None) -> str:
    """The commit checked out in `folder` (default: the working directory), or "" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


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


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Trial id -> run id of the child runs already under `parent_run_id`."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'", max_results=50000
    )
    return {r.data.tags[TAG_TRIAL_ID]: r.info.run_id for r in runs if TAG_TRIAL_ID in r.data.tags}


def sweep_trials(tracking_uri: str, name: str, metric: str, key: str = "search.warm_start") -> list[dict[str, Any]]:
    """The completed and early-stopped trials of earlier sweeps, for a warm start (read only).

    `name` is an MLflow experiment (every sweep in it) or a sweep's parent run id; ConfigError names `key`
    when it is neither. Each trial: params (the sweep's config under the trial's own values, as MLflow
    strings), searched (the trial's own param names), history (`metric` by epoch), epochs, outcome.
    """
    client = connect(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        parents = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'sweep'", max_results=50000
        )
    else:
        try:
            parents = [client.get_run(name)]
        except MlflowException:
            raise ConfigError(key, f"{name!r} is neither an MLflow experiment nor a run at {tracking_uri}") from None
        if parents[0].data.tags.get(TAG_ROLE) != "sweep":
            raise ConfigError(key, f"run {name} is not a sweep's parent run; name the parent or its experiment")
    trials = []
    for parent in parents:
        children = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
            max_results=50000,
        )
        for child in children:
            outcome = child.data.tags.get(TAG_OUTCOME)
            if outcome not in (outcomes.COMPLETED, outcomes.STOPPED_EARLY) or child.data.tags.get(TAG_PHASE):
                continue
            history = sorted(client.get_metric_history(child.info.run_id, metric), key=lambda m: m.step)
            trials.append(
                {
                    "params": parent.data.params | child.data.params,
                    "searched": set(child.data.params),
                    "history": [m.value for m in history],
                    "epochs": int(child.data.tags.get(TAG_EPOCHS, len(history))),
                    "outcome": outcome,
                }
            )
    return trials


def _last_logged_epoch(client: MlflowClient, run_id: str) -> int:
    """The last epoch a trial's run holds (every epoch logs train_loss)."""
    return max((m.step for m in client.get_metric_history(run_id, "train_loss")), default=0)


def trial_metrics(result: dict[str, Any]) -> list[Metric]:
    """The trainable's own metrics (train_* and val_*), stepped by epoch; none of Ray's bookkeeping."""
    step = int(result.get("epoch", result.get("training_iteration", 0)))
    now = int(result.get("timestamp", time.time()) * 1000)
    return [
        Metric(key, float(value), now, step)
        for key, value in result.items()
        if key.startswith(("train_", "val_")) and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


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


def sweep_params(cfg: ExperimentConfig) -> list[Param]:
    """The whole resolved config as params: `section.key` (one level, so lists and the search space stay
    readable values)."""
    flat: dict[str, Any] = {}
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            flat |= {f"{section}.{k}": v for k, v in values.items()}
        else:
            flat[section] = values
    return [Param(k, _param_value(v)) for k, v in sorted(flat.items())]


def _param_value(value: Any) -> str:
    """MLflow keeps at most 6000 characters of a param: a longer value is cut and ends with '...'."""
    if hasattr(value, "item"):
        value = value.item()
    text = str(value)
    return text if len(text) <= PARAM_VALUE_LIMIT else text[: PARAM_VALUE_LIMIT - 3] + "..."


def _short(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) < 200 else text[:197] + "..."
