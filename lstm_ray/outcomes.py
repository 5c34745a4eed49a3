"""How a trial ended, in the user's words, decided in one place for the progress line, MLflow and the summary."""

from __future__ import annotations

from typing import Any

COMPLETED = "completed"  # trained every epoch
STOPPED_EARLY = "stopped_early"  # the scheduler (ASHA) stopped it at a rung
FAILED = "failed"  # raised, diverged to NaN, or lost its node too often

MLFLOW_STATUS = {COMPLETED: "FINISHED", STOPPED_EARLY: "KILLED", FAILED: "FAILED"}


def outcome_of(last_result: dict[str, Any] | None, max_epochs: int, errored: bool) -> str:
    if errored:
        return FAILED
    epoch = (last_result or {}).get("epoch", 0)
    return COMPLETED if epoch >= max_epochs else STOPPED_EARLY
