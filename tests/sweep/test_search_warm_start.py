"""Warm start: an earlier real sweep in MLflow is told to the searcher, and TPE proposes differently because of it."""

from __future__ import annotations

import copy

import pytest
from tune_runs import Recorder, tiny

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.search.searchers import build_searcher
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.sweep.warm_start import warm_start_points

pytestmark = pytest.mark.slow

SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"choice": [4, 8]}}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, local_ray):
    """A finished random-search sweep of 4 trials in its own MLflow store: (its config, its summary)."""
    from conftest import TINY

    folder = tmp_path_factory.mktemp("earlier")
    cfg = tiny(copy.deepcopy(TINY), folder, algorithm="random", scheduler="fifo", space=SPACE, seed=11)
    cfg.train.max_epochs = 2
    cfg.tracking.experiment = "earlier"
    return cfg, run_sweep(cfg, config_text="earlier")


def warm(earlier_cfg, algorithm="hyperopt", name="earlier", **search):
    raw = copy.deepcopy(earlier_cfg.to_dict())
    raw["search"] |= {"algorithm": algorithm, "warm_start": [name], "n_initial_points": 2, "seed": 5} | search
    raw["tracking"]["experiment"] = "later"
    return parse_config(raw)


def test_warm_start_reads_every_finished_trial_of_the_earlier_sweep(earlier):
    cfg, summary = earlier
    for name in ("earlier", summary.parent_run_id):  # by experiment name or by parent run id
        points = warm_start_points(warm(cfg, name=name))
        assert len(points) == 4 and all(p.epochs == 2 for p in points)
        assert all(set(p.params) == set(SPACE) and 1.0e-3 <= p.params["train.lr"] <= 3.0e-2 for p in points)
    assert min(p.best for p in points) == pytest.approx(summary.best_value)


@pytest.mark.parametrize("algorithm", ["hyperopt", "optuna"])
def test_warm_start_changes_what_tpe_proposes_first(earlier, algorithm):
    cfg = warm(earlier[0], algorithm)
    cold = build_searcher(cfg).suggest("first")
    warmed = build_searcher(cfg, warm_start_points(cfg)).suggest("first")
    assert warmed != cold


def test_a_warm_start_name_mlflow_does_not_know_is_a_config_error(earlier):
    with pytest.raises(ConfigError, match=r"search.warm_start\[0\]: 'nowhere' is neither"):
        warm_start_points(warm(earlier[0], name="nowhere"))


def test_a_warm_started_sweep_runs_what_the_warmed_searcher_proposes(earlier):
    cfg = warm(earlier[0], num_samples=2, max_concurrent=1)
    cfg.train.max_epochs = 1
    expected = build_searcher(cfg, warm_start_points(cfg)).suggest("first")
    recorder = Recorder()
    summary = run_sweep(cfg, config_text="later", callbacks=[recorder])
    assert list(recorder.configs.values())[0] == expected
    assert summary.counts["completed"] == 2
