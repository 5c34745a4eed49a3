"""Which failed trials Tune retries: only those a retry can help.

    install()            # once per driver process, before tuner.fit(); build_tuner calls it

A failure that would happen again is not retried, whatever `resources.max_failures` says: divergence to NaN
(DivergedError), a config or data error (ConfigError, DataError), a trial over its own memory budget
(TrialOutOfMemory: `resources.memory_mb`, or its GPU's memory; a retry gets the same budget, so it fails again).
Everything else is retried from the last checkpoint up to `resources.max_failures` times: a dead worker or node
(RayActorError), Ray's memory monitor killing a worker because the node ran low (other trials share the blame,
so the trial may fit next time), and errors lstm-ray does not know. A trial that stopped on its node's
termination notice (TrialPreempted) is retried without using up a retry, as Ray does for a preempted node.

Ray Tune 2.60 has no per-exception retry filter, so this relies on one internal: `TuneController.
_process_trial_failure(trial, exception)` calls `trial.handle_error(exception)` (which counts the failure in
`trial.run_metadata.num_failures`), then `trial.should_recover()`, which retries while `num_failures <=
trial.max_failures` (the per-trial copy of FailureConfig.max_failures; negative means always). `install` wraps
that method: for a failure that must not be retried it decides with `trial.max_failures = 0` and puts the value
back; for a preemption it raises the trial's allowance by one. tests/chaos/test_retry_policy.py pins this
behaviour of Ray, so an upgrade that changes it fails there loudly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

from lstm_ray.errors import ConfigError
from lstm_ray.sweep.preemption import TrialPreempted
from lstm_ray.sweep.trainable import TrialOutOfMemory
from lstm_ray.train.training import DivergedError

logger = logging.getLogger(__name__)

NOT_RETRIED = (DivergedError, ConfigError, TrialOutOfMemory)  # ConfigError includes DataError
DETERMINISTIC, PREEMPTED, RETRIED = "deterministic", "preempted", "retried"


def failure_kind(error: BaseException | None) -> str:
    """DETERMINISTIC (a retry fails the same way), PREEMPTED (the trial saved its state on its node's termination
    notice) or RETRIED (anything else: worker or node loss, Ray's memory monitor, an unknown error).

    `error` is what Tune hands over: a RayTaskError whose cause is the trial's exception (the exception itself
    when raised through ray.get), a RayActorError, or a TuneError; the cause chain is searched."""
    for cause in _causes(error):
        if isinstance(cause, NOT_RETRIED):
            return DETERMINISTIC
        if isinstance(cause, TrialPreempted):
            return PREEMPTED
    return RETRIED


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it wraps: RayTaskError.cause and each __cause__ (Tune's StartTraceback), once each."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, getattr(current, "cause", None)]


def install() -> None:
    """Wrap Tune's failure handling with `failure_kind` (idempotent). Warns and leaves Tune alone if the Ray
    internal it relies on is gone: every failure is then retried up to max_failures, as Tune does."""
    from ray.tune.execution.tune_controller import TuneController

    original = getattr(TuneController, "_process_trial_failure", None)
    if original is None:
        logger.warning("Ray Tune has no TuneController._process_trial_failure: every failed trial is retried")
        return
    if getattr(original, "_lstm_ray_retry_policy", False):
        return

    @functools.wraps(original)
    def process_trial_failure(controller: Any, trial: Any, exception: Any = None, **kwargs: Any) -> Any:
        kind = failure_kind(exception)
        if kind == PREEMPTED and trial.max_failures >= 0:
            trial.max_failures += 1  # a termination notice uses up no retry, as Ray's preempted RayActorError
        if kind != DETERMINISTIC:
            return original(controller, trial, exception=exception, **kwargs)
        allowed, trial.max_failures = trial.max_failures, 0
        try:
            return original(controller, trial, exception=exception, **kwargs)
        finally:
            trial.max_failures = allowed

    process_trial_failure._lstm_ray_retry_policy = True  # type: ignore[attr-defined]
    TuneController._process_trial_failure = process_trial_failure
