"""What a sweep prints without --verbose: a failed trial attempt is one line, not Ray's traceback."""

from __future__ import annotations

import logging
import sys

from lstm_ray.sweep.progress import shorten_trial_errors
from lstm_ray.train.training import DivergedError


def test_a_failed_trial_is_one_line_with_its_reason(caplog):
    shorten_trial_errors()
    shorten_trial_errors()  # idempotent: one filter however often a process starts sweeps
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    assert len(controller.filters) == 1
    try:
        raise DivergedError("train loss became nan at epoch 3; lower train.lr or clip harder")
    except DivergedError:
        with caplog.at_level(logging.ERROR, logger=controller.name):
            controller.error("Trial task failed for trial %s", "train_trial_00001", exc_info=sys.exc_info())
            controller.error("Something else", exc_info=sys.exc_info())
    shortened, other = caplog.records
    assert (
        shortened.getMessage()
        == (
            "Trial task failed for trial train_trial_00001: "
            "lstm_ray.train.training.DivergedError: train loss became nan at epoch 3; lower train.lr or clip harder"
        )
        and shortened.exc_info is None
    )
    assert other.exc_info is not None  # Tune's other errors keep their traceback
