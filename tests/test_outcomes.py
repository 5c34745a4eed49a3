"""How a trial's end is put into words for MLflow and the CLI summary."""

from __future__ import annotations

from lstm_ray import outcomes

RAY_NODE_OOM = """Failure # 1 (occurred at 2026-12-01_13-23-40)
ray::ImplicitFunc.train() (pid=1234, ip=127.0.0.1)
ray.exceptions.OutOfMemoryError: 2 worker(s) were killed due to the node running low on memory. Memory on the
node (IP: 127.0.0.1, ID: 03af1c90) was 22.02GB used / 23.54GB limit (0.935352)
OOM kill reason: Memory usage 24087597056B exceeded threshold of 24012677120B (95.0% of 25276502016B limit)
Object store memory usage: [- objects spillable: 6
- bytes in use: 2031511
Refer to the documentation on how to address the out of memory issue: https://docs.ray.io/en/latest/
"""

TRIAL_TRACEBACK = """Failure # 1 (occurred at 2026-12-01_13-23-40)
ray::ImplicitFunc.train() (pid=1234, ip=127.0.0.1)
  File "lstm_ray/training.py", line 119, in run_epoch
    raise DivergedError(...)
lstm_ray.train.training.DivergedError: train loss became nan at epoch 3; lower train.lr or clip harder
"""


def test_a_node_oom_kill_says_what_happened_and_what_to_change():
    reason = outcomes.failure_summary(RAY_NODE_OOM)
    assert "memory monitor" in reason and "22.02GB used / 23.54GB limit" in reason and "resources.memory_mb" in reason


def test_a_trial_exception_is_its_own_line_not_the_traceback_around_it():
    assert outcomes.failure_summary(TRIAL_TRACEBACK) == (
        "lstm_ray.train.training.DivergedError: train loss became nan at epoch 3; lower train.lr or clip harder"
    )


def test_text_without_an_exception_line_gives_its_last_line():
    assert outcomes.failure_summary("worker died\nunexpectedly\n") == "unexpectedly"
    assert outcomes.failure_summary("") == "the trial raised an error"


def test_stop_reasons_distinguish_the_scheduler_from_early_stopping():
    assert outcomes.stop_reason({"epoch": 2}, outcomes.STOPPED_EARLY) == "stopped by the scheduler at epoch 2"
    assert "train.patience" in outcomes.stop_reason({"epoch": 4, "early_stopped": 1.0}, outcomes.COMPLETED)
    assert outcomes.outcome_of({"epoch": 4, "early_stopped": 1.0}, max_epochs=10, errored=False) == outcomes.COMPLETED
    assert outcomes.outcome_of({"epoch": 4}, max_epochs=10, errored=False) == outcomes.STOPPED_EARLY
