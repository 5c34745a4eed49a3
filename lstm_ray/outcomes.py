"""How a trial ended, in the user's words, decided in one place for the progress line, MLflow and the summary."""

from __future__ import annotations

import re
from typing import Any

COMPLETED = "completed"  # trained every epoch, or stopped itself (train.patience: no more improvement)
STOPPED_EARLY = "stopped_early"  # the scheduler (ASHA) stopped it at a rung
FAILED = "failed"  # raised, diverged to NaN, or lost its node too often

# A run the scheduler stopped ended as planned: FINISHED (the UI's KILLED and FAILED both look like failures);
# the `lstm_ray.outcome` tag keeps it apart from a completed one.
MLFLOW_STATUS = {COMPLETED: "FINISHED", STOPPED_EARLY: "FINISHED", FAILED: "FAILED"}


def outcome_of(last_result: dict[str, Any] | None, max_epochs: int, errored: bool) -> str:
    if errored:
        return FAILED
    result = last_result or {}
    if result.get("early_stopped") or result.get("epoch", 0) >= max_epochs:
        return COMPLETED
    return STOPPED_EARLY


def stop_reason(last_result: dict[str, Any] | None, outcome: str) -> str:
    """Why a trial that did not fail ended, in words for the MLflow tag and the summary."""
    result = last_result or {}
    epoch = int(result.get("epoch", 0))
    if outcome == STOPPED_EARLY:
        return f"stopped by the scheduler at epoch {epoch}"
    if result.get("early_stopped"):
        return f"early stopping: no improvement for train.patience epochs (stopped at epoch {epoch})"
    return "max_epochs reached"


NODE_OOM = re.compile(r"killed due to the node running low on memory.*?was ([\d.]+GB used / [\d.]+GB limit)", re.S)
EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exhausted|OutOfMemory)\w*: ")


def failure_summary(text: str) -> str:
    """One line saying why a trial failed, from its error text (a traceback, or Ray's long messages): the
    trial's own exception line, or what Ray's memory monitor did and what to change."""
    oom = NODE_OOM.search(text)
    if oom:
        return (
            f"killed by Ray's memory monitor: the node ran low on memory ({oom.group(1)}); set resources.memory_mb "
            "so fewer trials share a node, or lower train.batch_size or model.hidden_size"
        )
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (exceptions or lines or ["the trial raised an error"])[-1]


def reasons_by_trial(failures: dict[str, str]) -> dict[str, list[str]]:
    """Each distinct reason of `failures` (trial id -> reason) with the trials it hit, in order of first sight."""
    reasons: dict[str, list[str]] = {}
    for trial_id, reason in failures.items():
        reasons.setdefault(reason, []).append(trial_id)
    return reasons


def reason_lines(reasons: dict[str, list[str]]) -> list[str]:
    """One line per reason of `reasons_by_trial`: the reason, then how many trials it hit and which."""
    return [
        f"{reason} ({len(ids)} trial{'s' if len(ids) > 1 else ''}: {', '.join(ids)})" for reason, ids in reasons.items()
    ]


class SweepFailed(Exception):
    """No trial of a sweep reported its metric (every trial failed, or none finished an epoch): no winner.

    `reasons` maps each distinct reason to the trials it hit; `summary` is the sweep's SweepSummary (counts,
    elapsed time, the parent run, which is closed FAILED with the reasons) and `tracking_uri` its MLflow store,
    for the CLI's closing lines."""

    def __init__(self, reasons: dict[str, list[str]], summary: Any = None, tracking_uri: str = ""):
        self.reasons, self.summary, self.tracking_uri = reasons, summary, tracking_uri
        super().__init__("no trial reported a result: " + "; ".join(reason_lines(reasons)))

    def __reduce__(self):
        return type(self), (self.reasons, self.summary, self.tracking_uri)
