"""`search.algorithm: nsga2`: Optuna's NSGA-II through Ray's Optuna integration, on one objective or on
search.objectives; a real small multi-objective sweep bred by it and replayed (`lstm-ray replay`)."""

from __future__ import annotations

import pickle

import optuna
import pytest
from conftest import TINY
from hypothesis import given
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from tune_runs import tiny

from lstm_ray import cli
from lstm_ray.config import parse_config
from lstm_ray.search import replay as replay_module
from lstm_ray.search.mo_optuna import MultiObjectiveOptunaSearch
from lstm_ray.search.nsga2 import nsga2_population
from lstm_ray.search.optuna_space import EpochAwareOptunaSearch
from lstm_ray.search.searchers import build_searcher
from lstm_ray.sweep.replay import replay_sweep
from lstm_ray.sweep.tuning import run_sweep

SPACE = {"model.hidden_size": {"choice": [2, 4, 16]}, "train.lr": {"loguniform": [1.0e-4, 3.0e-2]}}
OBJECTIVES = [{"metric": "val_rmse", "mode": "min"}, {"metric": "latency_ms", "mode": "min"}]


def config(tiny_raw, **search):
    tiny_raw["search"] = {"algorithm": "nsga2", "space": SPACE} | search
    return parse_config(tiny_raw)


@pytest.mark.parametrize(
    ("objectives", "kind"), [([], EpochAwareOptunaSearch), (OBJECTIVES, MultiObjectiveOptunaSearch)]
)
def test_nsga2_is_optunas_nsga2_sampler_seeded_by_search_seed(tiny_raw, objectives, kind):
    searcher = build_searcher(config(tiny_raw, objectives=objectives, seed=7, num_samples=40))
    sampler = searcher._sampler
    assert isinstance(searcher, kind) and isinstance(sampler, optuna.samplers.NSGAIISampler)
    assert sampler.population_size == 10
    again = build_searcher(config(tiny_raw, objectives=objectives, seed=7, num_samples=40))
    proposals = [[s.suggest(f"t{i}") for i in range(3)] for s in (searcher, again)]
    assert proposals[0] == proposals[1]  # the same seed proposes the same first generation
    restored = pickle.loads(pickle.dumps(searcher))  # Tune saves the searcher with the experiment
    assert restored.suggest("t3") == again.suggest("t3")


@given(num_samples=st.integers(1, 1000), max_trials=st.one_of(st.none(), st.integers(1, 1000)))
def test_a_generation_is_a_quarter_of_the_trials_within_4_and_50(num_samples, max_trials):
    cfg = parse_config(TINY | {"search": {"algorithm": "nsga2", "num_samples": num_samples, "max_trials": max_trials}})
    trials = min(num_samples, max_trials or num_samples)
    assert nsga2_population(cfg) == min(max(trials // 4, 4), 50)


@pytest.mark.parametrize(
    ("search", "key"),
    [
        ({"space": {"model.hidden_size": {"grid": [2, 4]}}}, "search.space.model.hidden_size"),
        ({"scheduler": "pbt", "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}, "search.scheduler"),
        ({"objectives": OBJECTIVES, "scheduler": "median"}, "search.scheduler"),
        ({"warm_start": ["earlier-sweep"]}, "search.warm_start"),
    ],
)
def test_bad_combinations_with_nsga2_are_one_error_line(tmp_path, capsys, search, key):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\ndata: {source: 'builtin:co2', target: co2, time_column: date, lookback: 8, horizon: 2}\n"
        f"search: {dict({'algorithm': 'nsga2', 'space': SPACE} | search)}\n"
    )
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {key}:") and len(err.splitlines()) == 1


@pytest.mark.slow
def test_nsga2_breeds_a_second_generation_and_the_sweep_replays(local_ray, tmp_path, tiny_raw, capsys, monkeypatch):
    """Six trials one at a time, each trained to the end (fifo): the first generation of 4 is random, the last 2
    are bred from it. Replayed with its own settings, the same seed proposes the same configurations."""
    cfg = tiny(tiny_raw, tmp_path, algorithm="nsga2", scheduler="fifo", num_samples=6, max_concurrent=1, seed=3,
               objectives=OBJECTIVES, space=SPACE)  # fmt: skip
    summary = run_sweep(cfg, config_text="nsga2")
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_run(summary.parent_run_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{summary.parent_run_id}'")
    assert len(runs) == 6 and all(r.data.metrics["latency_ms"] > 0 for r in runs)

    built = []  # the searchers the replay builds (the real build_searcher, recorded)
    monkeypatch.setattr(
        replay_module, "build_searcher", lambda *a, **k: built.append(build_searcher(*a, **k)) or built[-1]
    )
    comparison = replay_sweep(summary.parent_run_id, [], slots=None, tracking_uri=cfg.tracking.uri)
    as_run = [r.data.params["train.lr"] for r in sorted(runs, key=lambda r: r.info.start_time)]  # one at a time
    assert [str(t.config["train.lr"]) for t in comparison.recorded.trials] == as_run
    assert not comparison.recorded.filled and comparison.timed == 6
    study = built[0]._ot_study  # the replay's NSGA-II, which proposed what the sweep's did
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler) and study.sampler.population_size == 4
    generation = study.sampler._get_generation_key()  # where Optuna's genetic samplers keep a trial's generation
    assert [t.system_attrs[generation] for t in study.trials] == [0, 0, 0, 0, 1, 1]
    assert all(t.state.name == "COMPLETE" and len(t.values) == 2 for t in study.trials)  # told every trial
    assert comparison.as_run.front == len(summary.pareto) == len(comparison.recorded.front())

    changed = replay_sweep(summary.parent_run_id, ["search.scheduler=asha"], slots=2, tracking_uri=cfg.tracking.uri)
    assert changed.new.epochs <= changed.recorded.epochs and changed.new.front()  # MO-ASHA, replayed
    assert cli.main(["replay", summary.parent_run_id, "--tracking-uri", cfg.tracking.uri]) == 0
    out = capsys.readouterr().out
    assert "Pareto front (trials)" in out and "Pareto front (new policy), each trial at its best val_rmse:" in out
