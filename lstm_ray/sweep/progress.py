"""A one-line progress report for sweeps: counts by outcome, the best score so far and elapsed time.

    [00:42] 7/16 trials done: 4 completed, 3 stopped early, 0 failed | 2 running | best val_rmse 0.412
    ... | best val_rmse 0.412 | spent 3.1/20 GPU-h, $12.30/$150     (with search.budget)

Ray's full trial table stays available with `lstm-ray tune --verbose`.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from collections.abc import Callable
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
        started: float | None = None,
    ):
        self.metric, self.mode, self.total, self.max_epochs = metric, mode, total, max_epochs
        self.every, self.out = every, out
        self.started = time.monotonic() if started is None else started  # the summary's clock: one sweep time
        self.last_print = 0.0
        self.running: set[str] = set()
        self.counts = {outcomes.COMPLETED: 0, outcomes.STOPPED_EARLY: 0, outcomes.FAILED: 0}
        self.best = math.nan
        self.dirty = False
        self.budget_state: Callable[[], str] | None = None  # search.budget's spend, e.g. "spent 3.1/20 GPU-h"

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"out": None}  # Tune pickles callbacks; streams cannot be pickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled by a resume: the old process's clock means nothing here (`complete_sweep` sets the resume's).
        self.__dict__ = {"budget_state": None} | state | {"out": sys.stdout, "started": time.monotonic()}

    def get_state(self) -> dict[str, Any]:
        """Saved by Tune with the experiment: a resumed sweep's line goes on counting its earlier trials."""
        return {"counts": dict(self.counts), "best": self.best}

    def set_state(self, state: dict[str, Any]) -> None:
        self.counts.update(state["counts"])
        self.best = state["best"]
        self.running = set()

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
        spent = f" | {self.budget_state()}" if self.budget_state is not None else ""
        self.out.write(
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {done}/{self.total} trials done: "
            f"{self.counts[outcomes.COMPLETED]} completed, {self.counts[outcomes.STOPPED_EARLY]} stopped early, "
            f"{self.counts[outcomes.FAILED]} failed | {len(self.running)} running | best {self.metric} {best}{spent}\n"
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


# Ray notices that lstm-ray answers itself, by logger: the text that marks each.
RAY_NOTICES = {
    # After a Ctrl-C: a Tuner restored by hand would not continue the sweep's MLflow runs; lstm-ray prints its own
    # `lstm-ray resume FOLDER` line (`fit_or_interrupt`).
    "ray.tune.tune": "Resume experiment with:",
    # Every new local Ray turns token auth on by itself (token in ~/.ray/auth_token) and warns that it did, on every
    # run. Only the warning goes: the mode stays Ray's, RAY_AUTH_MODE untouched (docs/cluster.md: token everywhere).
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled for this Ray cluster",
    # A trial that search.time_budget stopped before its first epoch has no result file; the summary names the
    # budget as its reason (`sweep/finish.py`).
    "ray.tune.analysis.experiment_analysis": "Failed to fetch metrics for",
}


class DropNotice(logging.Filter):
    """Drops the log records whose message contains `text`; the logger's other records pass."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def drop_ray_notices() -> None:
    """Install a `DropNotice` for each of `RAY_NOTICES` on its logger (once per process), before Ray starts."""
    for name, text in RAY_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNotice) and f.text == text for f in logger.filters):
            logger.addFilter(DropNotice(text))
