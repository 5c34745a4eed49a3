"""A sweep as a Ray job: submit it to a cluster's Jobs API and follow its log (`job_handle.py` wraps a job in
an object that also asks its status, stops it and reads its result back from MLflow).

    lstm-ray submit configs/cluster-gpu.yaml --address http://HEAD:8265 --follow
    lstm-ray status cluster-gpu-20261123-191407-1a2b --address http://HEAD:8265
    lstm-ray stop cluster-gpu-20261123-191407-1a2b --address http://HEAD:8265

The job's runtime environment carries two things: a working directory holding only the experiment file, and
the `lstm_ray` package of this checkout (`py_modules`), so the cluster runs the submitter's code; the nodes need
lstm-ray's dependencies (the cluster YAMLs pip-install lstm-ray) and its Python first on PATH. The entrypoint runs
`python -m lstm_ray.cli tune CONFIG --address auto` (plus the --set overrides) on the head, so the sweep's driver,
and with it every MLflow write, is on the head.

The config is validated here first (ConfigError, nothing submitted). Token auth comes from the environment as for
every Ray client: RAY_AUTH_MODE=token with RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; a 401 or 403
becomes one ConfigError line naming the variable to set.

Anyone who can list the cluster's jobs sees a job's entrypoint and metadata, so the tracking URI is masked there
and in the shipped config (`redaction.redact`); its credentials travel in the job's environment as
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstm_ray.config import ExperimentConfig, load_config
from lstm_ray.errors import ConfigError
from lstm_ray.redaction import credential_variables, redact

__all__ = [
    "SubmittedJob",
    "check_cluster_paths",
    "follow",
    "job_info",
    "job_lines",
    "job_request",
    "jobs_client",
    "submit",
    "submitted_lines",
]

ADDRESS_VARIABLE = "RAY_API_SERVER_ADDRESS"  # where `ray job` looks for the dashboard too
JOB_ENV = {
    "PYTHONUNBUFFERED": "1",  # the driver writes to a log file: unbuffered, progress reaches --follow as it happens
    # `lstm-ray stop` interrupts the driver as Ctrl-C would: Tune saves the sweep for `lstm-ray resume` and the
    # MLflow parent run ends KILLED, where Ray's default SIGTERM would leave both half-written.
    "RAY_JOB_STOP_SIGNAL": "SIGINT",
    "RAY_JOB_STOP_WAIT_TIME_S": "60",
}
PARENT_RUN = re.compile(r"parent run ([0-9a-f]{32})")  # how the driver names the sweep's MLflow parent run

PACKAGE_FOLDER = Path(__file__).resolve().parents[1]  # lstm_ray/
META_EXPERIMENT = "lstm_ray.experiment"  # the Ray job's metadata: where its MLflow runs go
META_TRACKING_URI = "lstm_ray.tracking_uri"


@dataclass
class SubmittedJob:
    job_id: str
    address: str
    experiment: str  # the MLflow experiment the sweep logs to
    tracking_uri: str  # as the driver on the head sees it

    @property
    def dashboard_url(self) -> str:
        return f"{self.address}/#/jobs/{self.job_id}"


def submit(
    config: str | Path,
    overrides: list[str],
    address: str | None,
    *,
    command: str = "tune",
    extra_args: tuple[str, ...] = (),
) -> SubmittedJob:
    """Validate the experiment for a cluster, then submit `lstm-ray COMMAND CONFIG --address auto` as a Ray job.

    Raises ConfigError (nothing submitted) for a bad config, a path only this machine can see, a bad or
    unreachable address, or refused credentials. `extra_args` are appended to the command line on the head.
    """
    cfg = load_config(config, overrides)
    check_cluster_paths(cfg)
    check_overrides_hold_no_secret(overrides)
    address = dashboard_address(address)
    folder = Path(tempfile.mkdtemp(prefix="lstm-ray-job-"))  # not "ray...": a ray/ folder would shadow the package
    try:
        with jobs_client(address) as client:
            job_id = client.submit_job(
                submission_id=f"{_slug(cfg.name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}",
                **job_request(config, cfg, overrides, folder, command, extra_args),
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return SubmittedJob(job_id, address, cfg.experiment_name, redact(cfg.tracking.uri))


def job_request(
    config: str | Path, cfg: ExperimentConfig, overrides: list[str], folder: Path, command: str, extra_args: tuple
) -> dict[str, Any]:
    """The job's entrypoint, runtime_env and metadata, with the config copied into `folder` (its working_dir).
    The tracking URI's credentials go in the job's environment only: masked in the rest (the module's docstring)."""
    credentials = credential_variables(cfg.tracking.uri)
    text = Path(config).read_text()
    if credentials:  # the driver finds them in its environment (`tracking.runs.credentials_to_environment`)
        text = text.replace(cfg.tracking.uri, redact(cfg.tracking.uri))
    (folder / Path(config).name).write_text(text)
    runtime_env = {
        "working_dir": str(folder),
        "py_modules": [str(PACKAGE_FOLDER)],
        "excludes": ["__pycache__", "*.pyc"],
        "env_vars": JOB_ENV | credentials,
    }
    argv = [command, Path(config).name, "--address", "auto", *extra_args, *[f"--set={redact(o)}" for o in overrides]]
    return {
        "entrypoint": entrypoint(argv, sqlite_folder(cfg.tracking.uri)),
        "runtime_env": runtime_env,
        "metadata": {META_EXPERIMENT: cfg.experiment_name, META_TRACKING_URI: redact(cfg.tracking.uri)},
    }


def entrypoint(argv: list[str], workdir: str | None) -> str:
    """The job's shell command: `python -m lstm_ray.cli ARGV` in the job's working directory, or in `workdir`.

    `workdir` is the folder of a SQLite tracking store: MLflow puts a SQLite store's artifacts in ./mlruns of
    the process that creates the experiment, which in the job's working directory would be deleted with it.
    """
    run = "exec python -m lstm_ray.cli"
    if workdir is None:
        return f"{run} {shlex.join(argv)}"
    command, config, *rest = argv
    where = f'config="$PWD"/{shlex.quote(config)} && cd {shlex.quote(workdir)}'
    return f'{where} && {run} {command} "$config" {shlex.join(rest)}'


def check_overrides_hold_no_secret(overrides: list[str]) -> None:
    """Raise ConfigError for a `--set` carrying a credential other than tracking.uri's (which the job's environment
    carries): the entrypoint shows it to everyone who can list the cluster's jobs, and a masked one cannot work."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.strip() != "tracking.uri" and redact(value) != value:
            raise ConfigError(key.strip(), f"{redact(value)!r} carries a credential, which the job's entrypoint "
                              "would show; put it in the config file or in the cluster's environment")  # fmt: skip


def check_cluster_paths(cfg: ExperimentConfig) -> None:
    """Raise ConfigError for a relative path: on the cluster it would point into the job's temporary working
    directory, which holds only the config and is deleted after the job."""
    if not _absolute_location(cfg.storage.path):
        raise ConfigError(
            "storage.path",
            f"{cfg.storage.path!r} is relative; a job would write its checkpoints into a temporary folder. "
            "Use a path every node sees (e.g. /mnt/lstm-ray/results on NFS) or s3://bucket/prefix",
        )
    uri = cfg.tracking.uri
    store = local_store(uri)
    if store is not None and not store.startswith("/"):
        raise ConfigError(
            "tracking.uri",
            f"{uri!r} is relative; a job would record the sweep in a temporary folder. Use an absolute path on "
            "the head (sqlite:////srv/lstm-ray/mlflow.db) or a server (http://127.0.0.1:5000)",
        )
    paths = {"data.source": cfg.data.source, "model.embedding_vectors": cfg.model.embedding_vectors}
    if cfg.model.init_from and not cfg.model.init_from.startswith(("runs:/", "models:/")):
        paths["model.init_from"] = cfg.model.init_from
    for key, value in paths.items():
        if value and not value.startswith("builtin:") and not _absolute_location(value):
            raise ConfigError(key, f"{value!r} is relative; the job ships only the config. Use an absolute path "
                              "the head can read, or an s3:// or gs:// URI")  # fmt: skip


def local_store(uri: str) -> str | None:
    """The file or folder of a tracking store on the driver's disk (sqlite:///, file:, a bare path), else None."""
    if uri.startswith("sqlite:///"):
        return uri.removeprefix("sqlite:///")
    if uri.startswith("file:"):
        return uri.removeprefix("file:").removeprefix("//")
    return None if ":" in uri or uri.startswith("databricks") else uri


def sqlite_folder(uri: str) -> str | None:
    """The folder of an absolute SQLite tracking store (sqlite:////srv/mlflow.db -> /srv), else None."""
    store = local_store(uri) if uri.startswith("sqlite:///") else None
    return str(Path(store).parent) if store and store.startswith("/") else None


def dashboard_address(address: str | None) -> str:
    """The Jobs API address: `address`, else RAY_API_SERVER_ADDRESS; ConfigError unless it is an http(s) URL."""
    address = (address or os.environ.get(ADDRESS_VARIABLE) or "").rstrip("/")
    if not address.startswith(("http://", "https://")):
        got = f"got {address!r}" if address else f"none given and {ADDRESS_VARIABLE} is not set"
        raise ConfigError(
            "--address",
            f"needs the head's dashboard URL, e.g. http://127.0.0.1:8265 through `ray dashboard CLUSTER.yaml`; {got}",
        )
    return address


def submitted_lines(job: SubmittedJob) -> list[str]:
    """What `lstm-ray submit` prints: the job id and where to follow the sweep."""
    return [
        f"Submitted job {job.job_id} to {job.address}",
        f"  follow:    lstm-ray status {job.job_id} --follow --address {job.address}",
        f"  dashboard: {job.dashboard_url}",
        f"  MLflow:    experiment {job.experiment!r} at {job.tracking_uri} (as the head sees it); the sweep's parent "
        "run is its newest run tagged lstm_ray.role=sweep, and the job's log names it",
    ]


def follow(address: str | None, job_id: str, echo: Callable[[str], None], *, summary: bool = True) -> int:
    """`echo` each line of the job's log until the job ends, then (with `summary`) its status lines and the MLflow
    parent run seen in the log; returns `exit_code` of the job. Ctrl-C stops following, not the job."""
    address = dashboard_address(address)
    with jobs_client(address) as client:
        job_info(client, job_id)  # an unknown job is a ConfigError, not a websocket error
        try:
            parent = asyncio.run(_tail(client, job_id, echo))
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"stopped following; job {job_id} keeps running (lstm-ray stop {job_id})") from None
        info = job_info(client, job_id)
    if summary:
        for line in job_lines(info, address) + ([f"MLflow parent run: {parent}"] if parent else []):
            echo(line)
    return exit_code(info)


async def _tail(client: Any, job_id: str, echo: Callable[[str], None]) -> str:
    """Echo the log line by line; returns the last MLflow parent run id named in it ("" if none)."""
    parent, pending = "", ""
    async for chunk in client.tail_job_logs(job_id):
        *lines, pending = (pending + chunk).split("\n")
        for line in lines:
            echo(line)
            parent = next(iter(PARENT_RUN.findall(line)), parent)
    if pending:
        echo(pending)
    return parent


def exit_code(info: Any) -> int:
    """The command's exit code for a finished job: 0 succeeded, 2 the job rejected its input, 1 otherwise."""
    if str(info.status) == "SUCCEEDED":
        return 0
    return 2 if info.driver_exit_code == 2 else 1


def job_lines(info: Any, address: str) -> list[str]:
    """A job's status for people: the status line, then what ran, when, and where to look."""
    lines = [f"{info.submission_id}: {info.status}" + (f" ({info.message})" if info.message else "")]
    lines.append(f"  entrypoint: {redact(info.entrypoint)}")
    if info.start_time:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.start_time / 1000))
        took = f", ran {_duration((info.end_time - info.start_time) / 1000)}" if info.end_time else ""
        lines.append(f"  started {start}{took}")
    lines.append(f"  dashboard: {address}/#/jobs/{info.submission_id}")
    meta = info.metadata or {}
    if META_EXPERIMENT in meta:
        lines.append(f"  MLflow: experiment {meta[META_EXPERIMENT]!r} at {redact(meta[META_TRACKING_URI])}")
    return lines


def job_info(client: Any, job_id: str) -> Any:
    """Ray's JobDetails of `job_id` through `client`; ConfigError naming JOB when the cluster has no such job."""
    try:
        return client.get_job_info(job_id)
    except RuntimeError as err:
        if "404" in str(err):
            raise ConfigError("JOB", f"no job {job_id!r} on this cluster; `ray job list` shows its jobs") from None
        raise


@contextlib.contextmanager
def jobs_client(address: str) -> Iterator[Any]:
    """A JobSubmissionClient for `address`; connection and auth failures become one ConfigError line."""
    import requests
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)  # Ray's INFO: "Uploading package ..." for every job
    try:
        yield JobSubmissionClient(address)
    except AuthenticationError as err:
        raise ConfigError("--address", auth_advice(address, "Authentication required" in str(err))) from None
    except (ConnectionError, requests.exceptions.ConnectionError):
        raise ConfigError(
            "--address", f"nothing answers at {address}; start the cluster, or open a tunnel to its dashboard "
            "(`ray dashboard CLUSTER.yaml`, `kubectl port-forward HEAD 8265:8265`)",
        ) from None  # fmt: skip


def auth_advice(address: str, missing: bool) -> str:
    """What to set after a 401 (`missing` token) or a 403 (a token the cluster rejects)."""
    if missing and os.environ.get("RAY_AUTH_MODE") != "token":
        return f"{address} requires a token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH to its token file"
    if missing:
        return f"{address} requires a token and none was found: set RAY_AUTH_TOKEN_PATH to the cluster's token file"
    used = next((v for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if os.environ.get(v)), "~/.ray/auth_token")
    return f"{address} rejected the token from {used}: set RAY_AUTH_TOKEN_PATH to this cluster's token file" + (
        " and unset RAY_AUTH_TOKEN, which takes precedence" if used == "RAY_AUTH_TOKEN" else ""
    )


def _absolute_location(path: str) -> bool:
    return "://" in path or path.startswith("/")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "sweep"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
