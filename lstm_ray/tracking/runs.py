"""lstm-ray's MLflow runs: every tag name it writes, the one way to open MLflow, and the queries that read runs back.

    client = connect("http://mlflow:5000")            # short HTTP retries; also the process-wide tracking URI
    child_runs(client, experiment_id, parent_run_id)  # {"a1b2c3d4": "<run id>", ...}: each trial's child run
    why_unreachable("http://mlflow:5000", 20.0)       # "" when the server answers, else the gist of why not

A sweep is a parent run tagged `lstm_ray.role` = sweep with one child run per trial (`lstm_ray.role` = trial,
`mlflow.parentRunId`, `lstm_ray.trial_id`). The tag names below are stored in users' MLflow servers: never rename one.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from lstm_ray import outcomes
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.redaction import credential_variables, redact, split_credentials
from lstm_ray.tracking.sqlite_store import seed_store

log = logging.getLogger(__name__)

TAG_ROLE = "lstm_ray.role"  # ROLE_SWEEP on a sweep's parent run, ROLE_TRIAL on a trial's child run
TAG_CONFIG_NAME = "lstm_ray.config_name"  # the parent's: the config's `name`
TAG_MODEL_URI = "lstm_ray.model_uri"  # the parent's: the winner's model URI once logged
TAG_BEST_TRIAL_ID = "lstm_ray.best_trial_id"  # the parent's: the trial whose model was logged
TAG_BEST_BASELINE = "lstm_ray.best_baseline"  # the parent's: the naive baseline best on validation
TAG_ERROR = "lstm_ray.error"  # the parent's, when the sweep failed or was interrupted: why, in one line
BASELINE_PREFIX = "baseline."  # the parent's metrics baseline.<name>.<split>_<metric>
FORECAST_ARTIFACT = "forecast_test.csv"  # the parent's: winner, best baseline and actual on the test windows
TAG_TRIAL_ID = "lstm_ray.trial_id"  # a child's: Tune's trial id
TAG_OUTCOME = "lstm_ray.outcome"  # a child's: outcomes.COMPLETED | STOPPED_EARLY (both FINISHED) | FAILED
TAG_RESUMES = "lstm_ray.resumes"  # a child's: "true" while it is KILLED by a stopped sweep that a resume continues
TAG_STOP_REASON = "lstm_ray.stop_reason"
TAG_EPOCHS = "lstm_ray.epochs"
TAG_RUNG = "lstm_ray.rung_reached"  # the highest ASHA rung (epoch) the trial got to; 0 below the first
TAG_PHASE = "lstm_ray.phase"  # children of a later Tune run of the same sweep, e.g. "reevaluation"
TAG_NODE = "lstm_ray.node"  # host and IP of the node the trial ran on (its last, after a restore)
TAG_CHANGED = "lstm_ray.changed."  # + a hyperparameter PBT changed mid-trial (a non-numeric value; numbers: metrics)
ROLE_SWEEP = "sweep"
ROLE_TRIAL = "trial"
CLIENT_DEFAULTS = {
    # MLflow's own defaults retry for ~4 minutes inside one blocking call; the outbox retries instead.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    # The sweep prints its own progress: no run URLs or download bars between its lines.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def open_client(uri: str) -> MlflowClient:
    """A client for `uri` with short HTTP retries and no chatter (an environment variable already set wins); a new
    local SQLite store is seeded first (`sqlite_store.py`). The process-wide tracking URI is left as it is.
    Credentials in an http(s) `uri` go to MLflow's environment variables (`credentials_to_environment`)."""
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = credentials_to_environment(uri)
    seed_store(uri)
    return MlflowClient(uri)


def credentials_to_environment(uri: str) -> str:
    """`uri` without its user and password, which go to MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: the
    client's URI, which the outbox spills and Tune pickles with the sweep's callbacks, then holds no password. A
    masked URI (`user:***@`, as lstm-ray saves it) loses its user too, so variables the user set apply."""
    variables = credential_variables(uri)
    if variables:
        os.environ.update(variables)
        _warn_credentials_in_uri()
    return split_credentials(uri)[0]


@functools.cache
def _warn_credentials_in_uri() -> None:
    log.warning(
        "warning: tracking.uri carries a password; lstm-ray masks it wherever it logs, saves or prints the URI, but "
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead (`lstm-ray resume` needs them)"
    )


def connect(uri: str) -> MlflowClient:
    """`open_client(uri)`, with `uri` also made the process-wide tracking URI, so that MLflow's fluent API
    (`mlflow.pyfunc.load_model` in a notebook after a sweep) reads the same store."""
    client = open_client(uri)
    mlflow.set_tracking_uri(client.tracking_uri)
    return client


def children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """Every child run under `parent_run_id` (trials, re-evaluation runs and runs of trials Tune forgot)."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'", max_results=50000
    )


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Trial id -> run id of the child runs already under `parent_run_id`."""
    runs = children(client, experiment_id, parent_run_id)
    return {r.data.tags[TAG_TRIAL_ID]: r.info.run_id for r in runs if TAG_TRIAL_ID in r.data.tags}


def last_logged_epoch(client: MlflowClient, run_id: str) -> int:
    """The last epoch a trial's run holds (every epoch logs train_loss)."""
    return max((m.step for m in client.get_metric_history(run_id, "train_loss")), default=0)


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
            [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_SWEEP}'", max_results=50000
        )
    else:
        try:
            parents = [client.get_run(name)]
        except MlflowException:
            where = redact(tracking_uri)
            raise ConfigError(key, f"{name!r} is neither an MLflow experiment nor a run at {where}") from None
        if parents[0].data.tags.get(TAG_ROLE) != ROLE_SWEEP:
            raise ConfigError(key, f"run {name} is not a sweep's parent run; name the parent or its experiment")
    trials = []
    for parent in parents:
        for child in children(client, parent.info.experiment_id, parent.info.run_id):
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


def sweep_parent(client: MlflowClient, name: str, tracking_uri: str, key: str = "SWEEP") -> Run:
    """The parent run `name` names: an MLflow experiment's latest sweep, or a sweep's parent run id.
    ConfigError names `key` when it is neither, or when the experiment holds no sweep."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        latest = client.search_runs(
            [experiment.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_SWEEP}'", order_by=["start_time DESC"],
            max_results=1,
        )  # fmt: skip
        if not latest:
            raise ConfigError(key, f"experiment {name!r} holds no sweep yet; run `lstm-ray tune` first")
        return latest[0]
    try:
        run = client.get_run(name)
    except MlflowException:
        where = redact(tracking_uri)
        raise ConfigError(key, f"{name!r} is neither an MLflow experiment nor a run at {where}") from None
    if run.data.tags.get(TAG_ROLE) != ROLE_SWEEP:
        raise ConfigError(key, f"run {name} is not a sweep's parent run; name the parent or its experiment")
    return run


def why_unreachable(uri: str, timeout_s: float) -> str:
    """ "" if the MLflow tracking server at `uri` answers a query within `timeout_s`, else the gist of why not.
    One short try: MLflow's default retries would take minutes to say the same."""
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout_s)))}
    saved = {name: os.environ.get(name) for name in quick}
    os.environ.update(quick)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        client = MlflowClient(credentials_to_environment(uri))
        pool.submit(client.search_experiments, max_results=1).result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as err:  # MLflow raises many kinds (connection, auth, bad URI): each is the answer
        return _gist(err)
    finally:
        pool.shutdown(wait=False)
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
    return ""


def _gist(err: BaseException) -> str:
    """The gist of an MLflow client error, whose text holds a whole urllib3 traceback for a connection error."""
    text = str(err)
    for marker, gist in (
        ("Connection refused", "connection refused: nothing listens there"),
        ("Name or service not known", "unknown host"),
        ("timed out", "the request timed out"),
        ("401", "401: credentials missing"),
        ("403", "403: credentials refused"),
    ):
        if marker in text:
            return gist
    return redact(one_line(err))
