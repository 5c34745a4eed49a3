"""The Python API: what `lstm-ray tune` and `lstm-ray resume` do, for notebooks and pipelines (docs/api.md).

    import lstm_ray

    cfg = lstm_ray.load_config("configs/quickstart.yaml", overrides=["search.num_samples=4"])
    result = lstm_ray.tune(cfg)             # blocks until the sweep ends; Ctrl-C saves it for lstm_ray.resume
    result.leaderboard.head()               # one row per trial, best first
    model = lstm_ray.load_model(result.model_uri, result.tracking_uri)

The CLI is built on these functions. Config and data errors raise ConfigError (DataError) naming the key, before
Ray is imported; Ray, torch and MLflow load only when a sweep starts or a model loads.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from lstm_ray.cluster.job_handle import SweepJob  # Ray-free until a method is called
from lstm_ray.config import ExperimentConfig, apply_override, parse_config
from lstm_ray.config import load_config as _load_file
from lstm_ray.errors import ConfigError
from lstm_ray.outcomes import SweepFailed

if TYPE_CHECKING:
    import pandas as pd

    from lstm_ray.sweep.finish import SweepSummary

__all__ = ["Job", "SweepFailed", "SweepResult", "load_config", "load_model", "resume", "submit", "tune"]

BAR_WIDTH = 20  # characters of the notebook's trials-done bar


@dataclass
class SweepResult:
    """What a finished sweep gives back: the winner, its scores, where MLflow and Tune keep the rest."""

    best_params: dict[str, Any]  # the winner's searched values, e.g. {"train.lr": 0.004, "model.hidden_size": 64}
    metric: str  # the searched metric, e.g. val_rmse
    best_value: float  # the winner's value of `metric` on the validation split
    test_metrics: dict[str, float]  # the winner on the held-out test split: {"test_rmse": ...}
    baselines: dict[str, float]  # every naive baseline's score: {"last_value.val_rmse": ...}
    baseline_ratios: dict[str, float]  # winner / best baseline per split: {"test_rmse_vs_baseline": 0.86}
    parent_run_id: str  # the sweep's MLflow parent run ("" with tracking.enabled: false)
    model_uri: str  # the winner's logged model, for load_model ("" when MLflow was unreachable)
    tracking_uri: str  # the MLflow store the sweep logged to
    leaderboard: pd.DataFrame  # one row per trial, best first
    storage_path: str  # Tune's results and checkpoints (the folder lstm_ray.resume takes)
    failures: dict[str, str] = field(default_factory=dict)  # failed trial id -> reason
    summary: SweepSummary | None = None  # everything else: counts, elapsed time, re-evaluation, tie note


def load_config(path_or_dict: str | Path | dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    """A validated experiment config from a YAML file or from plain data (as the YAML would parse), with
    `overrides` ("train.max_epochs=3", as `--set` takes them) applied. Raises ConfigError naming the key."""
    if not isinstance(path_or_dict, dict):
        return _load_file(path_or_dict, overrides)
    raw = copy.deepcopy(path_or_dict)  # the caller's dict stays as it was
    for item in overrides or []:
        apply_override(raw, item)
    return parse_config(raw)


def tune(
    config: ExperimentConfig | dict[str, Any] | str | Path,
    address: str | None = None,
    progress: bool = True,
    *,
    overrides: list[str] | None = None,
    verbose: bool = False,
) -> SweepResult:
    """Run a sweep to its end and return its result; what `lstm-ray tune` does.

    `config` is an ExperimentConfig, a dict or a YAML path (`overrides` apply to the last two). With no `address`
    (or RAY_ADDRESS) Ray starts in this process. `progress`: one updating line in Jupyter, the CLI's progress
    lines elsewhere; False prints nothing. Config and data errors raise before Ray is imported. Ctrl-C (a kernel
    interrupt) raises KeyboardInterrupt after the sweep's state is saved: `resume` continues it. A sweep no trial
    of which reported its metric raises SweepFailed: `.reasons` maps each reason to the trials it hit.
    """
    cfg, text = _config_and_text(config, overrides)
    data = checked_data(cfg)  # bad data surfaces here, before Ray is imported
    if address is None and not os.environ.get("RAY_ADDRESS"):
        from lstm_ray.sweep.capacity import check_this_machine

        check_this_machine(cfg)  # a trial too large for this machine, a precision its CPU cannot run
    from lstm_ray.sweep.tuning import run_sweep

    with progress_stream(progress) as stream:
        summary = run_sweep(cfg, config_text=text, data=data, address=address, verbose=verbose, progress=stream)
    return sweep_result(summary, cfg.tracking.uri)


def checked_data(cfg: ExperimentConfig) -> Any:
    """The sweep's prepared data, once every input a trial would fail on is checked (ConfigError, before Ray):
    the metric can be computed on the data, the embedding has its vectors and a token column, model.init_from
    loads, search.time_budget holds one epoch (`train/epoch_estimate.py`)."""
    from lstm_ray.data.dataset import prepare_sweep_data
    from lstm_ray.train.embeddings import check_embedding
    from lstm_ray.train.metrics import check_metric

    data = prepare_sweep_data(cfg)
    check_metric(cfg.search.metric, data)
    check_embedding(cfg.model, data)
    if cfg.model.init_from:  # torch loads only when there is something to open
        from lstm_ray.train.transfer import check_init_from

        check_init_from(cfg)
    if cfg.search.time_budget is not None:  # a few training batches, timed only when there is a budget to check
        from lstm_ray.train.epoch_estimate import check_time_budget

        check_time_budget(cfg, data)
    return data


def resume(
    name_or_folder: str,
    *,
    storage: str = "lstm-ray-results",
    resume_errored: bool = False,
    restart_errored: bool = False,
    address: str | None = None,
    progress: bool = True,
    verbose: bool = False,
    trust_unsigned: bool = False,
) -> SweepResult:
    """Continue an interrupted sweep to its end; what `lstm-ray resume` does.

    `name_or_folder` is the sweep's folder or its name (the latest `<name>-<time>` folder in `storage`). Failed
    trials stay failed unless `resume_errored` (from their last checkpoint) or `restart_errored` (from scratch).
    Like the CLI, it changes the working directory to the one the sweep started in, so that the config's relative
    paths mean what they meant. A wrong name raises ConfigError before Ray is imported, and so does a folder whose
    state files are not the ones its sweep signed (docs/security.md), unless `trust_unsigned`.
    """
    from lstm_ray.storage import find_sweep, load_resume_info

    folder = find_sweep(name_or_folder, storage)
    cfg, _, _ = load_resume_info(folder)
    from lstm_ray.sweep.resume import resume_sweep

    # Tune restores the sweep's progress line from its saved state, writing to whatever stdout is then.
    with progress_stream(progress) as stream, contextlib.redirect_stdout(stream or sys.stdout):
        summary = resume_sweep(
            folder,
            restart_errored=restart_errored,
            resume_errored=resume_errored,
            address=address,
            verbose=verbose,
            trust_unsigned=trust_unsigned,
        )
    return sweep_result(summary, cfg.tracking.uri)


def load_model(uri: str, tracking_uri: str | None = None) -> Any:
    """The MLflow pyfunc model at `uri` (a SweepResult's model_uri, models:/NAME/VERSION, a folder); it predicts
    from raw rows as the data file has them. `tracking_uri` is the store that resolves runs:/ and models:/ URIs
    (default: MLflow's current one)."""
    import mlflow

    if tracking_uri:
        from lstm_ray.tracking.runs import connect

        connect(tracking_uri)
    return mlflow.pyfunc.load_model(uri)


def sweep_result(summary: SweepSummary, tracking_uri: str) -> SweepResult:
    """The SweepResult of a finished sweep's summary."""
    comparison = summary.comparison
    ratios = {}
    if comparison is not None:
        ratios = {f"{split}_{comparison.metric}_vs_baseline": comparison.ratio(split) for split in ("val", "test")}
    return SweepResult(
        best_params=dict(summary.best_params),
        metric=summary.metric,
        best_value=summary.best_value,
        test_metrics=dict(summary.test_metrics),
        baselines=dict(comparison.scores) if comparison else {},
        baseline_ratios={key: value for key, value in ratios.items() if math.isfinite(value)},
        parent_run_id=summary.parent_run_id,
        model_uri=summary.model_uri,
        tracking_uri=tracking_uri,
        leaderboard=summary.leaderboard,
        storage_path=summary.storage_path,
        failures=dict(summary.failures),
        summary=summary,
    )


def _config_and_text(
    config: ExperimentConfig | dict[str, Any] | str | Path, overrides: list[str] | None
) -> tuple[ExperimentConfig, str]:
    """The validated config and the YAML text the parent run logs as config.yaml: a file's own text, else the
    validated config (overrides applied) as YAML."""
    if isinstance(config, ExperimentConfig):
        if overrides:
            raise ConfigError("overrides", "apply to a dict or a YAML path; pass them to load_config instead")
        cfg = config
    else:
        cfg = load_config(config, overrides)
    if isinstance(config, (str, Path)):
        return cfg, Path(config).read_text()
    return cfg, yaml.safe_dump(cfg.to_dict(), sort_keys=False)


@contextlib.contextmanager
def progress_stream(progress: bool) -> Iterator[TextIO | None]:
    """Where a sweep's progress line goes: None (stdout, as the CLI prints it), an updating line in a Jupyter
    output, or, for progress=False, a null stream that stdout is also redirected to, so nothing prints."""
    if not progress:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            yield null
    elif in_notebook():
        yield notebook_line()
    else:
        yield None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a kernel, not the IPython terminal)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def notebook_line() -> TextIO:
    """A LiveLine shown in one Jupyter display that each progress line replaces, with a bar of trials done.

    The display appears with the first line, not before: Ray Tune's notebook reporter clears the cell's output
    as the sweep starts, and would take an earlier display with it."""
    from IPython.display import DisplayHandle, Pretty

    handle, shown = DisplayHandle(), []

    def show(line: str) -> None:
        if shown:
            handle.update(Pretty(with_bar(line)))
        else:
            handle.display(Pretty(with_bar(line)))
            shown.append(True)

    return LiveLine(show)


class LiveLine(io.TextIOBase):
    """A write-only text stream that hands each complete line to `show` (which replaces the one shown before):
    a progress line that updates in place instead of a growing log."""

    def __init__(self, show: Callable[[str], None]):
        super().__init__()
        self.show, self.pending = show, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        shown = [line for line in lines if line.strip()]
        if shown:
            self.show(shown[-1])
        return len(text)


def with_bar(line: str) -> str:
    """`line` with a bar of trials done in front when it holds "N/M trials done", as the progress line does."""
    found = re.search(r"(\d+)/(\d+) trials done", line)
    if not found or not int(found[2]):
        return line
    filled = min(BAR_WIDTH, BAR_WIDTH * int(found[1]) // int(found[2]))
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {line}"


def submit(
    config: ExperimentConfig | dict[str, Any] | str | Path, address: str | None = None, *, overrides=None
) -> Any:
    """Submit the sweep to the Ray cluster whose dashboard is `address` (default RAY_API_SERVER_ADDRESS) as a Ray
    job, after checking config and data here; returns at once with a handle: `.status()`, `.logs()`,
    `.wait(timeout)`, `.stop()` and `.result()`, the SweepResult read back from MLflow once the job succeeds.
    `Job.attach(job_id, address)` gives the handle of an earlier job.
    Set RAY_AUTH_MODE=token (and the token) before Ray is first imported when the cluster uses token auth."""
    from lstm_ray.cluster.job_handle import submit_sweep

    return Job(**vars(submit_sweep(config, address, overrides or ())))


@dataclass
class Job(SweepJob):
    """A submitted sweep's handle (`SweepJob`) whose `result()` is a SweepResult."""

    def result(self, timeout: float | None = None, tracking_uri: str | None = None) -> SweepResult:
        outcome = SweepJob.result(self, timeout, tracking_uri)
        return SweepResult(
            best_params=outcome.best_params,
            metric=outcome.metric,
            best_value=outcome.best_value,
            test_metrics=outcome.test_metrics,
            baselines=outcome.baselines,
            baseline_ratios=outcome.baseline_ratios,
            parent_run_id=outcome.parent_run_id,
            model_uri=outcome.model_uri,
            tracking_uri=outcome.tracking_uri,
            leaderboard=outcome.leaderboard,
            storage_path=outcome.storage_path,
        )
