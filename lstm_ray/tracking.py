"""Everything MLflow: a parent run per sweep, a child run per trial, the winner as a logged PyTorch model.

    tracker = SweepTracker.start(cfg, config_text)       # parent run
    Tuner(..., run_config=RunConfig(callbacks=[tracker.callback]))
    tracker.log_model(best_model, input_example, preprocessing)
    tracker.finish(summary_metrics, tags)

Writes happen on the driver, off Tune's event loop: callbacks only append to an ordered outbox that one
background thread drains with `log_batch`. A write that fails (server down) is retried in order until it is
acknowledged, so an outage delays logging but neither blocks training nor loses metrics.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray import tune

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig

log = logging.getLogger(__name__)

TAG_TRIAL_ID = "lstm_ray.trial_id"
TAG_OUTCOME = "lstm_ray.outcome"
TAG_STOP_REASON = "lstm_ray.stop_reason"
TAG_ROLE = "lstm_ray.role"
TAG_EPOCHS = "lstm_ray.epochs"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param value's length


@dataclass
class _Write:
    """One queued MLflow operation for a trial (or the parent when trial_id is None)."""

    kind: str  # "start" | "log" | "end"
    trial_id: str | None
    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    run_name: str = ""
    status: str = ""


class Outbox:
    """An ordered queue of MLflow writes drained by one thread; failures are retried, never dropped."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_run_id: str, flush_interval: float = 0.5):
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.run_ids: dict[str, str] = {}  # trial id -> MLflow run id, once the run exists
        self.started: set[str] = set()  # trial ids whose run creation is queued
        self.flush_interval = flush_interval
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._pending: list[_Write] = []
        self._thread = threading.Thread(target=self._drain, name="lstm-ray-mlflow", daemon=True)
        self._thread.start()

    def put(self, write: _Write) -> None:
        self._queue.put(write)

    def close(self, timeout: float = 300.0) -> bool:
        """Flush everything; returns False when writes were still unacknowledged after `timeout` seconds."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _drain(self) -> None:
        closing = False
        backoff = self.flush_interval
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval)
                if item is None:
                    closing = True
                else:
                    self._pending.append(item)
                while not self._queue.empty():  # take everything queued so far into one flush
                    item = self._queue.get_nowait()
                    closing = closing or item is None
                    if item is not None:
                        self._pending.append(item)
            except queue.Empty:
                pass
            try:
                self._flush()
                backoff = self.flush_interval
            except Exception as err:  # noqa: BLE001 - any transport error: keep the writes and retry
                log.warning("MLflow write failed (%s); retrying in %.0f s, nothing is dropped", err, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if closing and not self._pending:
                return

    def _flush(self) -> None:
        while self._pending:
            write = self._pending[0]
            if write.kind == "log":
                # Merge consecutive logs for the same run into as few log_batch calls as MLflow allows.
                batch = self._leading_logs(write.trial_id)
                self._log(write.trial_id, batch)
                del self._pending[: len(batch)]
                continue
            self._apply(write)
            self._pending.pop(0)

    def _leading_logs(self, trial_id: str | None) -> list[_Write]:
        run = []
        for write in self._pending:
            if write.kind != "log" or write.trial_id != trial_id:
                break
            run.append(write)
        return run

    def _log(self, trial_id: str | None, writes: list[_Write]) -> None:
        run_id = self._run_id(trial_id)
        metrics = [m for w in writes for m in w.metrics]
        params = [p for w in writes for p in w.params]
        tags = [t for w in writes for t in w.tags]
        for start in range(0, max(len(metrics), 1), MAX_BATCH):
            chunk = metrics[start : start + MAX_BATCH]
            first = start == 0
            self.client.log_batch(run_id, metrics=chunk, params=params if first else [], tags=tags if first else [])

    def _apply(self, write: _Write) -> None:
        if write.kind == "start":
            tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, TAG_TRIAL_ID: write.trial_id, TAG_ROLE: "trial"}
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=write.run_name)
            self.run_ids[write.trial_id] = run.info.run_id
            self.client.log_batch(run.info.run_id, params=write.params)
        elif write.kind == "end":
            run_id = self._run_id(write.trial_id)
            self.client.log_batch(run_id, tags=write.tags)
            self.client.set_terminated(run_id, status=write.status)

    def _run_id(self, trial_id: str | None) -> str:
        return self.parent_run_id if trial_id is None else self.run_ids[trial_id]


class TrialLogger(tune.Callback):
    """Ray Tune callback turning trial events into child-run writes on the outbox (never blocking).

    Tune pickles its callbacks with the experiment so `Tuner.restore` can bring them back; the logger
    therefore keeps only plain state and (re)starts its outbox in `setup`, re-finding the child runs a
    previous driver created so a resumed trial continues its own run.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, max_epochs: int):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.max_epochs = max_epochs
        self.outcome_counts = {outcomes.COMPLETED: 0, outcomes.STOPPED_EARLY: 0, outcomes.FAILED: 0}
        self.outbox: Outbox | None = None

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"outbox": None}

    def setup(self, **info: Any) -> None:
        self.start()

    def start(self) -> Outbox:
        if self.outbox is None:
            client = MlflowClient(self.tracking_uri)
            self.outbox = Outbox(client, self.experiment_id, self.parent_run_id)
            self.outbox.run_ids.update(child_runs(client, self.experiment_id, self.parent_run_id))
        return self.outbox

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        outbox = self.start()
        if trial.trial_id in outbox.run_ids or trial.trial_id in outbox.started:
            return  # a restored or resumed trial keeps logging into its existing run
        outbox.started.add(trial.trial_id)
        params = [Param(k, _param_value(v)) for k, v in sorted(trial.config.items())]
        outbox.put(_Write("start", trial.trial_id, params=params, run_name=str(trial)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.start().put(_Write("log", trial.trial_id, metrics=trial_metrics(result)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.outcome_of(trial.last_result, self.max_epochs, errored=False), "")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcomes.FAILED, failure_reason(trial))

    def _end(self, trial: Any, outcome: str, reason: str) -> None:
        self.outcome_counts[outcome] += 1
        epoch = int((trial.last_result or {}).get("epoch", 0))
        if not reason:
            reason = "max_epochs reached" if outcome == outcomes.COMPLETED else f"stopped by scheduler at epoch {epoch}"
        tags = [
            RunTag(TAG_OUTCOME, outcome),
            RunTag(TAG_STOP_REASON, reason[:5000]),
            RunTag(TAG_EPOCHS, str(epoch)),
        ]
        self.start().put(_Write("end", trial.trial_id, tags=tags, status=outcomes.MLFLOW_STATUS[outcome]))


@dataclass
class SweepTracker:
    """The parent run of one sweep and the callback logging its trials."""

    client: MlflowClient
    parent_run_id: str
    callback: TrialLogger

    @classmethod
    def start(cls, cfg: ExperimentConfig, config_text: str) -> SweepTracker:
        mlflow.set_tracking_uri(cfg.tracking.uri)
        client = MlflowClient(cfg.tracking.uri)
        experiment = client.get_experiment_by_name(cfg.experiment_name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment_name)
        parent = client.create_run(
            experiment_id,
            run_name=f"{cfg.name}-sweep",
            tags={TAG_ROLE: "sweep", "lstm_ray.config_name": cfg.name},
        )
        run_id = parent.info.run_id
        client.log_batch(run_id, params=sweep_params(cfg))
        client.log_text(run_id, config_text, "config.yaml")
        return cls(client, run_id, TrialLogger(cfg.tracking.uri, experiment_id, run_id, cfg.train.max_epochs))

    def finish(self, metrics: dict[str, float], tags: dict[str, str], status: str = "FINISHED") -> bool:
        """Flush every trial's writes, log the sweep's results and close the parent run.

        Returns False if some trial writes could not be delivered (the tracking server stayed down).
        """
        delivered = self.callback.start().close()
        counts = {f"trials_{name}": float(n) for name, n in self.callback.outcome_counts.items()}
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics | counts).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.set_terminated(self.parent_run_id, status=status)
        return delivered

    def log_model(self, model: Any, input_example: np.ndarray, preprocessing: dict[str, Any]) -> str:
        """Log `model` as an MLflow PyTorch model on the parent run; returns its model URI.

        MLflow exports it with torch.export, which fixes any dimension of size 1 in the example: the
        example therefore needs several windows so that the batch dimension stays dynamic.
        """
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        if len(input_example) < 2:
            raise ValueError("the input example needs at least 2 windows to keep the batch size dynamic")
        with torch.no_grad():
            output = model(torch.as_tensor(input_example)).numpy()
        with _quiet_model_export(), mlflow.start_run(run_id=self.parent_run_id):
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                signature=infer_signature(input_example, output),
                input_example=input_example,
            )
            mlflow.log_dict(preprocessing, "model_preprocessing.json")
        return info.model_uri


@contextlib.contextmanager
def _quiet_model_export():
    """Silence torch.export's and MLflow's harmless chatter while a model is logged."""
    loggers = [logging.getLogger(name) for name in ("mlflow.utils.requirements_utils", "torch._export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Trial id -> run id of the child runs already under `parent_run_id`."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'", max_results=50000
    )
    return {r.data.tags[TAG_TRIAL_ID]: r.info.run_id for r in runs if TAG_TRIAL_ID in r.data.tags}


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
    """The last line of the trial's exception (e.g. 'DivergedError: train loss became nan at epoch 3')."""
    text = ""
    path = getattr(trial, "error_file", None) or ""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        text = str(getattr(trial, "error_msg", "") or "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "the trial raised an error"


def sweep_params(cfg: ExperimentConfig) -> list[Param]:
    flat: dict[str, Any] = {}
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            flat |= {f"{section}.{k}": v for k, v in values.items()}
        else:
            flat[section] = values
    return [Param(k, _param_value(v)) for k, v in sorted(flat.items())]


def _param_value(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    text = str(value)
    return text if len(text) <= PARAM_VALUE_LIMIT else text[: PARAM_VALUE_LIMIT - 3] + "..."
