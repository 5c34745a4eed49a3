"""Warm start learns only from comparable trials: real earlier sweeps whose fixed settings differ are not told to
the searcher (the CLI line counts them per reason); a comparable sweep with fewer epochs is told at low fidelity."""

from __future__ import annotations

import copy
import math

import pytest
from conftest import TINY
from hypothesis import given
from hypothesis import strategies as st
from tune_runs import Recorder, tiny

from lstm_ray.config import dotted_keys, parse_config
from lstm_ray.outcomes import COMPLETED, STOPPED_EARLY
from lstm_ray.search.searchers import KnownPoint
from lstm_ray.sweep import tuning
from lstm_ray.sweep.tuning import run_sweep
from lstm_ray.sweep.warm_start import NOT_RESULT_SHAPING, WarmStart, difference, fidelity, shapes_result

SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"choice": [4, 8]}}
KEYS = sorted(dotted_keys(parse_config(copy.deepcopy(TINY)).to_dict()))
CFG = parse_config(copy.deepcopy(TINY))


# --- the comparison, over generated settings -------------------------------------------------------------------

texts = st.text(alphabet="abc0123456789.", min_size=1, max_size=6)


@given(today=st.dictionaries(st.sampled_from(KEYS), texts, min_size=1), data=st.data())
def test_a_difference_in_a_result_shaping_key_excludes_and_in_an_ignored_key_does_not(today, data):
    key = data.draw(st.sampled_from(sorted(today)))
    value = data.draw(texts.filter(lambda v: v != today[key]))
    earlier = today | {key: value}
    reason = difference(earlier, today, defaults={})
    if shapes_result(key):
        assert reason == f"{key} was {value}, is {today[key]}"
    else:
        assert reason is None
    assert difference(dict(today), today, defaults={}) is None  # equal settings always compare


@given(today=st.dictionaries(st.sampled_from(KEYS), texts, min_size=1), data=st.data())
def test_a_key_the_earlier_sweep_did_not_record_counts_as_its_default(today, data):
    key = data.draw(st.sampled_from(sorted(today)))
    earlier = {k: v for k, v in today.items() if k != key}
    assert difference(earlier, today, defaults={key: today[key]}) is None
    expected = f"{key} was x, is {today[key]}" if shapes_result(key) else None
    assert difference(earlier, today, defaults={key: "x"}) == expected


def test_every_data_model_and_train_key_shapes_the_result_but_the_listed_ones():
    ignored = {k for k in KEYS if not shapes_result(k)}
    sections = {k.split(".")[0] for k in KEYS if k.split(".")[0] in NOT_RESULT_SHAPING}
    assert ignored == {k for k in KEYS if k.split(".")[0] in sections} | {"train.seed", "train.max_epochs"}
    assert all(shapes_result(k) for k in KEYS if k.startswith(("data.", "model.")))


@given(
    history=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=12),
    then_max=st.integers(1, 12),
    today_max=st.integers(1, 12),
    outcome=st.sampled_from([COMPLETED, STOPPED_EARLY]),
)
def test_a_trial_counts_at_the_epochs_it_trained_against_todays_max_epochs(history, then_max, today_max, outcome):
    cfg = copy.deepcopy(CFG)
    cfg.train.max_epochs = today_max
    epochs = min(len(history), then_max)
    trial = {"params": {"train.max_epochs": str(then_max)}, "history": history[:epochs], "epochs": epochs}
    point = fidelity(trial | {"outcome": outcome}, cfg, {"train.lr": 0.01})
    assert isinstance(point, KnownPoint)
    assert point.best == min(history[: min(epochs, today_max)])  # epochs beyond today's budget do not count
    stopped_itself = outcome == COMPLETED and epochs < then_max  # train.patience: today it stops there too
    assert point.epochs == (today_max if stopped_itself or epochs >= today_max else epochs)


def test_a_schedule_that_spans_max_epochs_makes_another_max_epochs_incomparable():
    cfg = copy.deepcopy(CFG)
    cfg.train.schedule, cfg.train.max_epochs = "cosine", 8
    trial = {"params": {"train.max_epochs": "3"}, "history": [1.0, 0.5, 0.4], "epochs": 3, "outcome": COMPLETED}
    assert fidelity(trial, cfg, {}) == "train.max_epochs was 3, is 8 (train.schedule cosine spans it)"
    cfg.train.max_epochs = 3
    assert fidelity(trial, cfg, {}) == KnownPoint({}, 0.4, 3)
    assert fidelity(trial | {"history": [math.nan]}, cfg, {}) == "no finite val_rmse"


def test_the_line_counts_the_used_and_the_skipped_per_reason():
    warm = WarmStart([KnownPoint({}, 1.0, 2)] * 3, low_fidelity=1)
    warm.skipped.update(["model.cell was gru, is lstm"] * 5 + ["data.lookback was 12, is 8"] * 2)
    assert warm.line() == (
        "warm start: 3 earlier trials used (1 at low fidelity), 7 skipped: "
        "model.cell was gru, is lstm (5), data.lookback was 12, is 8 (2)"
    )
    assert WarmStart().line() == "warm start: 0 earlier trials used"


# --- real earlier sweeps in MLflow, and a sweep today that names them ---------------------------------------------


def config(folder, experiment, max_epochs, model=None, data=None, **search):
    raw = copy.deepcopy(TINY)
    raw["model"] |= model or {}
    raw["data"] |= data or {}
    cfg = tiny(raw, folder, **({"algorithm": "random", "scheduler": "fifo", "space": SPACE} | search))
    cfg.train.max_epochs = max_epochs
    cfg.tracking.experiment = experiment
    return cfg


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, local_ray):
    """Three finished sweeps in one MLflow store: 'mismatched' holds a GRU sweep and a lookback-12 sweep; the
    'comparable' one differs from today only in ignored settings and trained 1 epoch of today's 2. Returns the
    store's folder and the configs each comparable trial ran."""
    folder = tmp_path_factory.mktemp("earlier")
    for changes in ({"model": {"cell": "gru"}}, {"data": {"lookback": 12}}):
        run_sweep(config(folder, "mismatched", 1, num_samples=2, seed=3, **changes), config_text="mismatched")
    comparable = config(folder, "comparable", 1, num_samples=3, seed=11)
    comparable.train.seed, comparable.resources.cpu = 7, 0.5  # ignored: a seed, where it ran
    recorder = Recorder()
    run_sweep(comparable, config_text="comparable", callbacks=[recorder])
    return folder, list(recorder.configs.values())


@pytest.mark.slow
def test_only_comparable_trials_reach_the_searcher_and_the_cli_line_says_why(earlier, monkeypatch, capsys):
    folder, comparable_configs = earlier
    told: list[list[KnownPoint]] = []
    build = tuning.build_searcher
    monkeypatch.setattr(tuning, "build_searcher", lambda cfg, known=(): told.append(list(known)) or build(cfg, known))
    today = config(folder, "today", 2, algorithm="hyperopt", num_samples=1, n_initial_points=1, seed=5)
    today.search.warm_start = ["mismatched", "comparable"]
    summary = run_sweep(today, config_text="today")
    assert summary.counts["completed"] == 1
    (points,) = told
    assert sorted(p.params["train.lr"] for p in points) == pytest.approx(
        sorted(c["train.lr"] for c in comparable_configs)
    )
    assert all(p.epochs == 1 for p in points)  # 1 epoch of today's 2: told at low fidelity
    out = capsys.readouterr().out
    assert "warm start: 3 earlier trials used (3 at low fidelity), 4 skipped: " in out
    assert "model.cell was gru, is lstm (2)" in out and "data.lookback was 12, is 8 (2)" in out


@pytest.mark.slow
def test_a_comparable_sweep_at_full_fidelity_is_told_whole(earlier):
    from lstm_ray.sweep.warm_start import warm_start

    folder, comparable_configs = earlier
    today = config(folder, "today", 1, algorithm="optuna", num_samples=1, seed=5)
    today.search.warm_start = ["comparable"]
    warm = warm_start(today)
    assert len(warm.points) == len(comparable_configs) == 3 and not warm.skipped
    assert all(p.epochs == 1 for p in warm.points) and warm.low_fidelity == 0
    assert warm.line() == "warm start: 3 earlier trials used"
