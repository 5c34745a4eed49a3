"""A one-line progress report for sweeps: counts by outcome, the best score so far and elapsed time.

    [00:42] 7/16 trials done: 4 completed, 3 stopped early, 0 failed | 2 running | best val_rmse 0.412

Ray's full trial table stays available with `lstm-ray tune --verbose`.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from typing import Any, TextIO

from ray import tune

from lstm_ray import outcomes


class ProgressLine(tune.Callback):
    def __init__(
        self,
        metric: str,
        mode: str,
        total: int,
        max_epochs: int,
        every: float = 5.0,
        out: TextIO = sys.stdout,
    ):
        self.metric, self.mode, self.total, self.max_epochs = metric, mode, total, max_epochs
        self.every, self.out = every, out
        self.started = time.monotonic()
        self.last_print = 0.0
        self.running: set[str] = set()
        self.counts = {outcomes.COMPLETED: 0, outcomes.STOPPED_EARLY: 0, outcomes.FAILED: 0}
        self.best = math.nan
        self.dirty = False

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"out": None}  # Tune pickles callbacks; streams cannot be pickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__ = state | {"out": sys.stdout}

    def get_state(self) -> dict[str, Any]:
        """Saved by Tune with the experiment: a resumed sweep's line goes on counting its earlier trials."""
        return {"counts": dict(self.counts), "best": self.best}

    def set_state(self, state: dict[str, Any]) -> None:
        self.counts.update(state["counts"])
        self.best = state["best"]
        self.started, self.running = time.monotonic(), set()  # the time is the resumed run's, like its summary

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self.dirty = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(value):
            self.best = float(value)
            self.dirty = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, outcomes.outcome_of(trial.last_result, self.max_epochs, errored=False))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, outcomes.FAILED)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.dirty and time.monotonic() - self.last_print >= self.every:
            self.print_line()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.print_line()

    def print_line(self) -> None:
        elapsed = int(time.monotonic() - self.started)
        done = sum(self.counts.values())
        best = "-" if math.isnan(self.best) else f"{self.best:.4g}"
        self.out.write(
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {done}/{self.total} trials done: "
            f"{self.counts[outcomes.COMPLETED]} completed, {self.counts[outcomes.STOPPED_EARLY]} stopped early, "
            f"{self.counts[outcomes.FAILED]} failed | {len(self.running)} running | best {self.metric} {best}\n"
        )
        self.out.flush()
        self.last_print = time.monotonic()
        self.dirty = False

    def _ended(self, trial: Any, outcome: str) -> None:
        self.running.discard(trial.trial_id)
        self.counts[outcome] += 1
        self.dirty = True

    def _better(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        return value < self.best if self.mode == "min" else value > self.best


class OneLineTrialErrors(logging.Filter):
    """Ray Tune logs every failed trial attempt with its whole traceback; without --verbose it is one line,
    its reason (the summary lists the failed trials again at the end)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Trial task failed"):
            error = "".join(traceback.format_exception_only(record.exc_info[1]))
            record.msg = f"{record.getMessage()}: {outcomes.failure_summary(error)}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def shorten_trial_errors() -> None:
    """Install `OneLineTrialErrors` on Tune's controller logger (once per process)."""
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, OneLineTrialErrors) for f in controller.filters):
        controller.addFilter(OneLineTrialErrors())
