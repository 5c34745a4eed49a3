"""Helpers for the search and scheduling tests: tiny sweeps through the real Tuner, and what they did."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
from pathlib import Path
from typing import Any

from ray import tune

from lstm_ray.config import ExperimentConfig, parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.sweep.tuning import build_searcher, build_tuner, prepare_tune, tune_settings


class Recorder(tune.Callback):
    """Records each trial's config, its epochs, the most trials that ran at once and the most that the search
    algorithm had out at once (pending or running: what it offers, however fast each trial ends)."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any]] = {}
        self.epochs: dict[str, int] = {}
        self.resources: dict[str, dict[str, float]] = {}
        self.running: set[str] = set()
        self.most_running = 0
        self.most_live = 0

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.configs.setdefault(trial.trial_id, dict(trial.config))
        self.resources[trial.trial_id] = dict(trial.placement_group_factory.required_resources)
        self.running.add(trial.trial_id)
        self.most_running = max(self.most_running, len(self.running))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        live = sum(trial.status in ("PENDING", "RUNNING") for trial in trials)
        self.most_live = max(self.most_live, live)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.epochs[trial.trial_id] = int(result["epoch"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)


def tiny(tiny_raw: dict, tmp_path: Any, **search: Any) -> ExperimentConfig:
    """The tiny experiment with `search` keys set and storage under tmp_path."""
    raw = copy.deepcopy(tiny_raw)
    raw["train"] |= {"max_epochs": 3, "batch_size": 64}
    raw["model"]["hidden_size"] = 4
    raw["search"] = {"num_samples": 4, "grace_period": 1, "n_initial_points": 2} | search
    raw["storage"] = {"path": str(tmp_path / "results")}
    raw["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db"}
    return parse_config(raw)


def run(cfg: ExperimentConfig, name: str = "run") -> tuple[tune.ResultGrid, Recorder]:
    """Run `cfg`'s sweep through the real Tuner on the running Ray, with no MLflow."""
    recorder = Recorder()
    data = prepare_sweep_data(cfg)
    slots = prepare_tune(cfg, None, False)
    tuner = build_tuner(cfg, data, searcher=build_searcher(cfg), slots=slots, name=name, callbacks=[recorder])
    with tune_settings(slots, verbose=False):
        return tuner.fit(), recorder


def kill_session(session: int) -> None:
    """SIGKILL every process of the session a test started (Ray's workers set their own process groups)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # after "pid (comm)": state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
