"""Tune's process-wide knobs are set for lstm-ray's runs only: another Tune run in the process gets Tune's own."""

from __future__ import annotations

import os

import pytest

from lstm_ray.sweep.tuning import tune_settings

KNOBS = (
    "TUNE_MAX_PENDING_TRIALS_PG",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S",
    "RAY_AIR_NEW_OUTPUT",
)


@pytest.fixture
def unset(monkeypatch):
    for key in KNOBS:
        monkeypatch.delenv(key, raising=False)


def test_the_knobs_hold_during_the_run_and_are_gone_after_it(unset):
    with tune_settings(slots=3, verbose=False):
        assert [os.environ.get(key) for key in KNOBS] == ["3", "1", "0", "0"]
    assert [os.environ.get(key) for key in KNOBS] == [None] * 4


def test_a_failed_or_interrupted_run_puts_them_back_too(unset):
    with pytest.raises(KeyboardInterrupt), tune_settings(slots=2, verbose=True):
        assert "RAY_AIR_NEW_OUTPUT" not in os.environ  # verbose: Tune's own progress output
        raise KeyboardInterrupt
    assert [os.environ.get(key) for key in KNOBS] == [None] * 4


def test_the_users_own_settings_win_where_they_may_and_are_restored(unset, monkeypatch):
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "30")
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "1")
    with tune_settings(slots=4, verbose=False):
        assert [os.environ.get(key) for key in KNOBS] == ["4", "1", "30", "1"]
    assert [os.environ.get(key) for key in KNOBS] == ["1", None, "30", "1"]
