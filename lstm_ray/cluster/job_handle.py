"""A sweep submitted as a Ray job, as a Python object: its status, its log, waiting for it, stopping it, and its
result read back from MLflow once it has ended.

    job = submit_sweep("configs/cluster-gpu.yaml", "http://HEAD:8265")   # validated here; nothing sent if bad
    job.status()               # "PENDING", "RUNNING", "SUCCEEDED", "FAILED" or "STOPPED" (Ray's job status)
    job.wait(timeout=3600)     # the final status; TimeoutError if it still runs
    job.result().test_metrics  # {"test_rmse": ..., ...}: the sweep's parent run in MLflow

The CLI's `submit`, `status` and `stop` are built on this class; `jobs.py` does the submitting and following.
"""

from __future__ import annotations

import ast
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstm_ray.cluster.jobs import (
    META_EXPERIMENT,
    META_TRACKING_URI,
    PARENT_RUN,
    SubmittedJob,
    dashboard_address,
    follow,
    job_info,
    job_lines,
    jobs_client,
    submit,
    submitted_lines,
)
from lstm_ray.config import ExperimentConfig
from lstm_ray.errors import ConfigError

__all__ = ["SweepJob", "SweepOutcome", "read_outcome", "submit_sweep"]

STOP_WAIT_S = 90.0  # the driver gets SIGINT, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (60 s; jobs.JOB_ENV)


@dataclass(frozen=True)
class SweepOutcome:
    """What a finished sweep left on its MLflow parent run."""

    parent_run_id: str
    status: str  # the parent run's MLflow status: FINISHED once the sweep has finished
    metric: str  # search.metric, e.g. val_rmse
    best_value: float  # the winner's `metric` (the parent's best_<metric>); NaN when it was not logged
    best_trial_id: str
    best_params: dict[str, Any]  # the winner's searched hyperparameters, from its child run ({"model.hidden_size": 8})
    test_metrics: dict[str, float]  # the winner on the held-out test split ({"test_rmse": ...}), as the CLI prints
    baselines: dict[str, float]  # the naive baselines' scores, "<baseline>.<split>_<metric>" -> value
    model_uri: str  # the winner's model ("" while a spilled write still holds it)
    tracking_uri: str  # where it was read from
    baseline_ratios: dict[str, float] = field(default_factory=dict)  # {"test_rmse_vs_baseline": 0.86}
    leaderboard: Any = None  # the parent run's leaderboard.parquet as a pandas DataFrame (None when not logged)
    storage_path: str = ""  # the sweep's storage.path as the cluster sees it


@dataclass
class SweepJob(SubmittedJob):
    """A sweep running (or run) as a Ray job on the cluster whose dashboard is `address`.

    Every method asks the cluster anew; a lost connection or refused token raises ConfigError naming --address,
    an unknown job ConfigError naming JOB.
    """

    @classmethod
    def attach(cls, job_id: str, address: str | None = None) -> SweepJob:
        """The handle of a job submitted earlier (by `submit_sweep` or `lstm-ray submit`); `address` defaults to
        RAY_API_SERVER_ADDRESS. Its MLflow experiment and tracking URI come from the job's metadata."""
        address = dashboard_address(address)
        with jobs_client(address) as client:
            meta = job_info(client, job_id).metadata or {}
        return cls(job_id, address, meta.get(META_EXPERIMENT, ""), meta.get(META_TRACKING_URI, ""))

    def info(self) -> Any:
        """Ray's JobDetails of the job (status, message, entrypoint, start and end times, metadata)."""
        with jobs_client(self.address) as client:
            return job_info(client, self.job_id)

    def status(self) -> str:
        """Ray's job status: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return str(self.info().status)

    def logs(self) -> str:
        """The driver's log so far: the sweep's progress lines and, once it has ended, its summary."""
        with jobs_client(self.address) as client:
            job_info(client, self.job_id)  # an unknown job is a ConfigError, not a bare HTTP error
            return client.get_job_logs(self.job_id)

    def describe(self) -> list[str]:
        """The job's status for people, as `lstm-ray status` prints it."""
        return job_lines(self.info(), self.address)

    def submitted_lines(self) -> list[str]:
        """What `lstm-ray submit` prints: the job id and where to follow the sweep."""
        return submitted_lines(self)

    def follow(self, echo: Callable[[str], None] = print, *, summary: bool = True) -> int:
        """`echo` each log line until the job ends (then, with `summary`, its status lines); returns the CLI's
        exit code for it (0 succeeded, 2 bad input, 1 otherwise)."""
        return follow(self.address, self.job_id, echo, summary=summary)

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> str:
        """Block until the job has ended and return its final status. Raises TimeoutError when it still runs after
        `timeout` seconds (None: wait as long as it takes); the job itself goes on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with jobs_client(self.address) as client:
            while not (status := job_info(client, self.job_id).status).is_terminal():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {self.job_id} still {status} after {timeout:g} s; wait again or stop it")
                time.sleep(poll_s if left is None else min(poll_s, left))
        return str(status)

    def stop(self, timeout: float = STOP_WAIT_S) -> str:
        """Stop the job as Ctrl-C would stop the sweep (saved for `lstm-ray resume`, its MLflow parent run KILLED)
        and wait until it has ended; returns the final status (STOPPED, or how it ended before). Raises
        TimeoutError when it still runs after `timeout` seconds."""
        with jobs_client(self.address) as client:
            if not job_info(client, self.job_id).status.is_terminal():
                client.stop_job(self.job_id)
        return self.wait(timeout)

    def parent_run_id(self) -> str:
        """The sweep's MLflow parent run, which the driver names in the log before its first trial; "" before then
        and with tracking.enabled: false."""
        named = PARENT_RUN.findall(self.logs())
        return named[-1] if named else ""

    def result(self, timeout: float | None = None, tracking_uri: str | None = None) -> SweepOutcome:
        """Wait for the job (TimeoutError after `timeout` seconds), then read its sweep back from MLflow at
        `tracking_uri`: by default the job's tracking.uri as the head sees it; pass the one this machine reaches
        (a tunnel, a copy of the SQLite file) when they differ. Raises RuntimeError when the job did not succeed."""
        status = self.wait(timeout)
        if status != "SUCCEEDED":
            raise RuntimeError(f"job {self.job_id} ended {status}: the sweep has no result; its log says why")
        uri = tracking_uri or self.tracking_uri
        if not uri:
            raise ConfigError("tracking_uri", f"job {self.job_id} does not name its MLflow store; pass tracking_uri")
        parent = self.parent_run_id()
        if not parent:
            raise RuntimeError(f"job {self.job_id} named no MLflow parent run (tracking.enabled: false?)")
        return read_outcome(uri, parent)


def submit_sweep(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    address: str | None = None,
    overrides: Sequence[str] = (),
) -> SweepJob:
    """Validate `config` (a YAML file, the same as a mapping, or a loaded ExperimentConfig) with its `key=value`
    `overrides` for a cluster and submit its sweep as a Ray job to the dashboard at `address` (default:
    RAY_API_SERVER_ADDRESS). Returns at once with the job's handle.

    Raises ConfigError, with nothing submitted, for a bad config, a path only this machine sees (storage.path,
    tracking.uri and data files must be absolute or URIs), or an unreachable cluster or refused token.
    """
    if isinstance(config, (str, Path)):
        return SweepJob(**vars(submit(config, list(overrides), address)))
    raw = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    with tempfile.TemporaryDirectory(prefix="lstm-ray-config-") as folder:
        path = Path(folder) / "sweep.yaml"  # a config without a name is named for its file: "sweep"
        path.write_text(yaml.safe_dump(json.loads(json.dumps(raw)), sort_keys=False))  # JSON: tuples as lists
        return SweepJob(**vars(submit(path, list(overrides), address)))


def read_outcome(tracking_uri: str, parent_run_id: str) -> SweepOutcome:
    """The sweep whose MLflow parent run is `parent_run_id`, read from `tracking_uri`: its winner's
    hyperparameters (from the winner's child run), test scores, the baselines' scores and the model URI."""
    # Here, not at the top: MLflow takes seconds to import, and `lstm-ray status` or `stop` never needs it.
    from lstm_ray.tracking.runs import (
        BASELINE_PREFIX,
        TAG_BEST_TRIAL_ID,
        TAG_MODEL_URI,
        TAG_TRIAL_ID,
        children,
        open_client,
    )

    client = open_client(tracking_uri)
    parent = client.get_run(parent_run_id)
    metrics, tags = parent.data.metrics, parent.data.tags
    metric = parent.data.params.get("search.metric", "")
    best_trial = tags.get(TAG_BEST_TRIAL_ID, "")
    runs = children(client, parent.info.experiment_id, parent_run_id) if best_trial else []
    best = next((r for r in runs if r.data.tags.get(TAG_TRIAL_ID) == best_trial), None)
    return SweepOutcome(
        parent_run_id=parent_run_id,
        status=parent.info.status,
        metric=metric,
        best_value=metrics.get(f"best_{metric}", float("nan")),
        best_trial_id=best_trial,
        best_params={k: param_value(v) for k, v in best.data.params.items()} if best else {},
        test_metrics={k: v for k, v in metrics.items() if k.startswith("test_") and not k.endswith("_vs_baseline")},
        baselines={k.removeprefix(BASELINE_PREFIX): v for k, v in metrics.items() if k.startswith(BASELINE_PREFIX)},
        model_uri=tags.get(TAG_MODEL_URI, ""),
        tracking_uri=tracking_uri,
        baseline_ratios={k: v for k, v in metrics.items() if k.endswith("_vs_baseline")},
        leaderboard=_leaderboard(client, parent_run_id),
        storage_path=parent.data.params.get("storage.path", ""),
    )


def _leaderboard(client: Any, run_id: str) -> Any:
    """The parent run's leaderboard.parquet as a DataFrame; None when the run has none."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as folder:
        try:
            return pd.read_parquet(client.download_artifacts(run_id, "leaderboard.parquet", folder))
        except OSError:  # MLflow raises an OSError subclass for a missing artifact
            return None


def param_value(text: str) -> Any:
    """An MLflow param (str() of a Python value) as that value again: "8" -> 8, "1e-05" -> 1e-05, "None" -> None,
    "[4, 8]" -> [4, 8]; text that is no Python literal ("gru") stays text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
