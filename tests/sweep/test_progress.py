"""What a sweep prints without --verbose: a failed trial attempt is one line, not Ray's traceback; the progress
line's clock; the Ray notices lstm-ray answers itself."""

from __future__ import annotations

import io
import logging
import sys
import time

from lstm_ray.sweep.progress import RAY_NOTICES, ProgressLine, drop_ray_notices, shorten_trial_errors
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


def test_the_progress_clock_is_the_sweeps():
    out = io.StringIO()
    line = ProgressLine("val_rmse", "min", total=4, max_epochs=2, out=out, started=time.monotonic() - 75)
    line.print_line()
    assert out.getvalue().startswith("[01:15] 0/4 trials done: ")  # counted from the sweep's start, as its summary


def test_ray_notices_lstm_ray_answers_itself_are_dropped(caplog):
    drop_ray_notices()
    drop_ray_notices()  # idempotent
    for name, text in RAY_NOTICES.items():
        logger = logging.getLogger(name)
        assert len([f for f in logger.filters if getattr(f, "text", None) == text]) == 1
        with caplog.at_level(logging.WARNING, logger=name):
            logger.warning(f"Something was saved.\n{text} advice")
            logger.warning("Another warning")
    assert [r.getMessage() for r in caplog.records] == ["Another warning"] * len(RAY_NOTICES)
