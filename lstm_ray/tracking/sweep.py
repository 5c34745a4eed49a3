"""The parent run of one sweep: its config as params, the leaderboard, report and checkpoints, the winner's model.

    tracker = start_tracking(cfg, config_text, data)  # parent run (replays earlier spilled writes)
    Tuner(..., run_config=RunConfig(callbacks=[tracker.callback]))
    tracker.log_results(record, results, report)  # leaderboard, the report folder written, checkpoints
    tracker.log_model(best_model, raw_rows, preprocessing, lookback)
    tracker.finish(summary_metrics, tags)

Writes happen on the driver, off Tune's event loop: callbacks only append to an ordered outbox (`outbox.py`)
that one background thread drains in batches. A write that fails (server down) is retried in order until it is
acknowledged; what is still unsent when the sweep ends and `tracking.flush_timeout_s` has passed is spilled to
`<storage.path>/mlflow-outbox/` and sent on the next sweep start, resume or `lstm-ray report`. MLflow's own
HTTP retries are shortened (`runs.CLIENT_DEFAULTS`) so that this loop, not a 4-minute blocking call, is in charge.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_LOGGED_ARTIFACTS

from lstm_ray.config import ExperimentConfig, dotted_keys
from lstm_ray.data.prepared import PreparedData
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.redaction import redact
from lstm_ray.search.fidelity import asha_rungs
from lstm_ray.storage import as_uri
from lstm_ray.tracking.callbacks import OutcomeCounter, TrialLogger
from lstm_ray.tracking.outbox import Write, log_in_batches, param_value, replay_spilled, spill_folder
from lstm_ray.tracking.runs import ROLE_SWEEP, TAG_CONFIG_NAME, TAG_PHASE, TAG_ROLE, TAG_TRIAL_ID, children, connect

log = logging.getLogger(__name__)

PACKAGE_FOLDER = Path(__file__).resolve().parents[1]  # lstm_ray/: its checkout's commit is the sweep's code version
PARETO_ARTIFACT = "pareto.json"  # search.objectives: the parent run's Pareto front
TAG_PARETO = "lstm_ray.pareto"  # "true" on the run of each trial on that front
TAG_BUDGET = "lstm_ray.budget"  # the parent run's, when search.budget ended the sweep: why, and the spend
# Keys that mean nothing to a classify sweep: left out of its parent run's params.
FORECAST_ONLY = ("data.lookback", "data.horizon", "data.stride", "data.lags", "data.differences", "data.window_norm",
                 "data.target_transform", "data.season_length", "model.highway")  # fmt: skip


@dataclass
class SweepTracker:
    """The parent run of one sweep and the callback logging its trials."""

    client: MlflowClient
    parent_run_id: str
    callback: TrialLogger
    cfg: ExperimentConfig | None = None
    model_uri: str = ""  # the winner's model URI once logged ("" while the server is unreachable)
    staging: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lstm-ray-tracking-")))
    phase_loggers: list[TrialLogger] = field(default_factory=list)  # `trial_logger`'s, for later Tune runs
    _deadline: float | None = None
    _finished: bool = False

    @classmethod
    def start(cls, cfg: ExperimentConfig, config_text: str, data: PreparedData) -> SweepTracker:
        """Create the parent run, its params the config as `data` resolved it (raises ConfigError naming
        tracking.uri when the server cannot be reached), then send what earlier sweeps spilled into the same
        storage."""
        client = connect(cfg.tracking.uri)
        commit = git_commit()
        try:
            experiment = client.get_experiment_by_name(cfg.experiment_name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment_name)
            tags = {TAG_ROLE: ROLE_SWEEP, TAG_CONFIG_NAME: cfg.name}
            tags |= {MLFLOW_GIT_COMMIT: commit} if commit else {}
            parent = client.create_run(experiment_id, run_name=f"{cfg.name}-sweep", tags=tags)
        except MlflowException as err:
            raise ConfigError(
                "tracking.uri",
                f"cannot reach MLflow at {redact(cfg.tracking.uri)} ({redact(one_line(err, 200))}); start the server "
                "(scripts/mlflow_server.py) or point tracking.uri elsewhere",
            ) from None
        run_id = parent.info.run_id
        log_in_batches(client, run_id, params=sweep_params(cfg, data))  # the config has over 100 keys
        client.log_text(run_id, redact(config_text), "config.yaml")
        replay_spilled(as_uri(cfg.storage.path), timeout=cfg.tracking.flush_timeout_s)
        search = cfg.search
        max_t = search.max_t or cfg.train.max_epochs
        rungs = tuple(asha_rungs(search.scheduler, search.grace_period, search.reduction_factor, max_t))
        # The client's URI: without the password (`runs.credentials_to_environment`), as Tune pickles the logger.
        logger = TrialLogger(
            client.tracking_uri, experiment_id, run_id, cfg.train.max_epochs, rungs=rungs, git_commit=commit
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
                f"cannot reach the sweep's parent run {parent_run_id} at {redact(cfg.tracking.uri)} "
                f"({redact(one_line(err, 200))}); start the server it was logged to (credentials: "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)",
            ) from None
        return cls(client, parent_run_id, logger, cfg)

    def forget_trials(self, known: set[str]) -> int:
        """Delete this sweep's trial runs whose trial ids are not in `known`; returns how many.

        A driver killed between two of Tune's experiment snapshots leaves runs of trials the restored sweep
        never heard of; it proposes those trials again, under new ids, so their old runs would be duplicates.
        """
        runs = children(self.client, self.callback.experiment_id, self.parent_run_id)
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
        self.phase_loggers.append(logger)
        return logger

    def log_metrics(
        self, metrics: dict[str, float], trial_id: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        """Queue `metrics` (and `tags`) on trial `trial_id`'s run (None: the parent run), e.g. a cost budget's
        cost_usd and TAG_BUDGET."""
        now = int(time.time() * 1000)
        metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, v) for k, v in (tags or {}).items()]
        self.callback.start().put(Write("log", trial_id, metrics=metric_list, tags=tag_list))

    def log_json(self, data: Any, artifact_file: str) -> None:
        """Queue `data` as the JSON artifact `artifact_file` (e.g. "manifest.json") of the parent run."""
        self.log_text(json.dumps(data, indent=2, default=str), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Queue `text` as the artifact `artifact_file` (e.g. "forecast_test.csv") of the parent run."""
        path = Path(tempfile.mkdtemp(dir=self.staging)) / Path(artifact_file).name
        path.write_text(text)
        folder = str(Path(artifact_file).parent).removeprefix(".")
        self.callback.start().put(Write("artifacts", None, source=str(path.parent), artifact_path=folder))

    def log_pareto(self, front: list[dict[str, Any]], objectives: list[tuple[str, str]]) -> None:
        """Queue PARETO_ARTIFACT (the front's trials and the objectives) on the parent run and tag each front
        trial's run TAG_PARETO=true. `front`: rows with trial_id, epoch, the objectives and params."""
        self.log_json(
            {"objectives": [{"metric": m, "mode": d} for m, d in objectives], "front": front}, PARETO_ARTIFACT
        )
        outbox = self.callback.start()
        for row in front:
            if row["trial_id"] in outbox.run_ids:
                outbox.put(Write("log", row["trial_id"], tags=[RunTag(TAG_PARETO, "true")]))

    def report_folder(self) -> Path | None:
        """Where the caller writes the sweep's report for `log_results` to upload; None when `tracking.report`
        is off."""
        return self.staging / "report" if self.cfg is None or self.cfg.tracking.report else None

    def log_results(self, record: Any, results: Any, report: Path | None = None) -> None:
        """Queue the leaderboard (table + Parquet), the `report` folder (already written, e.g. into
        `report_folder()`) and the checkpoints `tracking.checkpoints` asks for. `record` is a
        `reports.SweepRecord`; `results` Tune's ResultGrid."""
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
        if report is not None:
            outbox.put(Write("artifacts", None, source=str(report), artifact_path="report"))
        for trial_id, checkpoint in self._checkpoints(board, results):
            local = checkpoint.to_directory(str(self.staging / "checkpoints" / trial_id))
            outbox.put(Write("artifacts", trial_id, source=local, artifact_path="checkpoint"))

    def log_model(
        self, model: Any, raw_rows: Any, preprocessing: dict[str, Any], lookback: int, register: bool = True
    ) -> None:
        """Queue the winner for the parent run as `model`, a pyfunc predicting from raw rows (`serving.py`),
        registered as `tracking.register_as` when set and `register` (False: search.pick met by no front
        member, so the model is not the one asked for). `raw_rows` (a DataFrame of rows the model can answer,
        e.g. `serving.raw_example(...)`) becomes its input example and signature.

        `model_uri` holds its URI once `finish` has sent it; it stays "" while the server is unreachable: the
        model then waits with the spilled writes and is logged by the next `replay_spilled`.
        """
        from lstm_ray.tracking.serving import stage_serving_model  # mlflow.pyfunc and pandas: only when logging

        folder = stage_serving_model(self.staging / "model", model, raw_rows, preprocessing, lookback)
        register_as = (self.cfg.tracking.register_as if self.cfg and register else None) or ""
        self.callback.start().put(Write("model", None, source=str(folder), register_as=register_as))

    def finish(self, metrics: dict[str, float], tags: dict[str, str], status: str = "FINISHED") -> bool:
        """Send every queued write, log the sweep's results and close the parent run. A sweep that did not
        finish ends its trials still training KILLED, to be continued by `lstm-ray resume` (`TrialLogger.interrupt`).

        Returns False if the server stayed unreachable for `tracking.flush_timeout_s`: the unsent writes are
        then spilled to `<storage.path>/mlflow-outbox/<parent run id>` and sent by the next `replay_spilled`.
        """
        if self._finished:
            return True
        self._finished = True
        outbox = self.callback.start()
        if status != "FINISHED":
            for logger in (self.callback, *self.phase_loggers):
                logger.interrupt()
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
                redact(self.client.tracking_uri),
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


def start_tracking(cfg: ExperimentConfig, config_text: str, data: PreparedData) -> SweepTracker | UntrackedSweep:
    """The sweep's tracker: a `SweepTracker` (parent run created now, `data` the sweep's prepared data), or with
    `tracking.enabled: false` an `UntrackedSweep` that never touches MLflow."""
    if not cfg.tracking.enabled:
        return UntrackedSweep(OutcomeCounter(cfg.train.max_epochs))
    return SweepTracker.start(cfg, config_text, data)


@dataclass
class UntrackedSweep:
    """`SweepTracker`'s interface with `tracking.enabled: false`: outcomes are counted, nothing is written."""

    callback: OutcomeCounter
    parent_run_id: str = ""
    model_uri: str = ""

    def trial_logger(self, phase: str) -> OutcomeCounter:
        return OutcomeCounter(self.callback.max_epochs)

    def log_metrics(
        self, metrics: dict[str, float], trial_id: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        pass

    def log_pareto(self, front: list[dict[str, Any]], objectives: list[tuple[str, str]]) -> None:
        pass

    def log_json(self, data: Any, artifact_file: str) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def report_folder(self) -> Path | None:
        return None

    def log_results(self, record: Any, results: Any, report: Path | None = None) -> None:
        pass

    def log_model(
        self, model: Any, raw_rows: Any, preprocessing: dict[str, Any], lookback: int, register: bool = True
    ) -> None:
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


def git_commit(folder: str | Path = PACKAGE_FOLDER) -> str:
    """The commit checked out where `folder` lies (default: the lstm_ray package, wherever the sweep is started
    from), or "" outside a git checkout. The `mlflow.source.git.commit` tags and the manifest both read it."""
    return _git(folder, "rev-parse", "HEAD")


def git_state(folder: str | Path = PACKAGE_FOLDER) -> dict[str, Any]:
    """`git_commit` and whether `folder` had uncommitted changes, for the manifest ({} outside git)."""
    commit = git_commit(folder)
    if not commit:
        return {}
    return {"git_commit": commit, "git_dirty": bool(_git(folder, "status", "--porcelain", "--", "."))}


def _git(folder: str | Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def sweep_params(cfg: ExperimentConfig, data: PreparedData) -> list[Param]:
    """The config as params, `section.key` (one level, so lists and the search space stay readable values), with
    what `data` resolved in place of the defaults (`resolved_data_keys`) and only the keys of the task: a classify
    sweep has no windows, lags or highway (FORECAST_ONLY)."""
    flat = dotted_keys(cfg.to_dict()) | resolved_data_keys(cfg, data)
    skipped = FORECAST_ONLY if cfg.data.task == "classify" else ()
    return [Param(k, param_value(v)) for k, v in sorted(flat.items()) if k not in skipped]


def resolved_data_keys(cfg: ExperimentConfig, data: PreparedData) -> dict[str, Any]:
    """The `data.*` values the sweep ran with where the config left them to a default: a bundled set's target,
    time and id columns, the input columns, the cv scheme (with cv) and the season length found in the data."""
    rows = data.row_spec
    resolved = {
        "data.target": rows.targets[0] if len(rows.targets) == 1 else rows.targets,
        "data.features": rows.numeric if cfg.data.features is None else cfg.data.features,
        "data.time_column": rows.time_column,
        "data.id_column": rows.id_column,
    }
    resolved |= {"data.cv_scheme": cfg.data.scheme} if cfg.data.validation == "cv" else {}
    return resolved | ({"data.season_length": data.season_length} if data.task == "forecast" else {})
