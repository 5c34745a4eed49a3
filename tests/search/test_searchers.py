"""Search algorithms: conditional spaces, early-stop reporting, seeding, and each algorithm in a real Ray run."""

from __future__ import annotations

import math

import pytest
from tune_runs import run, tiny

from lstm_ray.search.fidelity import Fidelity, ranked_loss
from lstm_ray.search.schedulers import build_scheduler
from lstm_ray.search.searchers import build_searcher

CONDITIONAL = {
    "model.num_layers": {"choice": [1, 2]},
    "model.dropout": {"uniform": [0.0, 0.3], "when": {"model.num_layers": 2}},
    "train.lr": {"loguniform": [1.0e-3, 3.0e-2]},
}
MODEL_BASED = ["hyperopt", "optuna", "nsga2", "bayesopt"]


def proposals(searcher, n: int, score=lambda config: config["train.lr"], epochs: int = 3) -> list[dict]:
    """Ask `searcher` for n configs, telling it after each one a finished trial scored by `score`."""
    configs = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        searcher.on_trial_complete(f"t{i}", result={"val_rmse": score(config), "epoch": epochs})
    return configs


@pytest.mark.parametrize("algorithm", [*MODEL_BASED, "random"])
def test_conditional_dimensions_appear_only_when_active(tiny_raw, tmp_path, algorithm):
    cfg = tiny(tiny_raw, tmp_path, algorithm=algorithm, space=CONDITIONAL, n_initial_points=3)
    configs = proposals(build_searcher(cfg), 10)
    for config in configs:
        assert ("model.dropout" in config) == (config["model.num_layers"] == 2), config
    assert {c["model.num_layers"] for c in configs} == {1, 2}


def test_condition_on_a_fixed_value_is_decided_before_the_sweep(tiny_raw, tmp_path):
    space = {
        "train.lr": {"loguniform": [1.0e-3, 3.0e-2]},
        "model.bidirectional": {"choice": [False, True], "when": {"data.task": "classify"}},
    }
    configs = proposals(build_searcher(tiny(tiny_raw, tmp_path, space=space)), 4)
    assert all(set(c) == {"train.lr"} for c in configs)


@pytest.mark.parametrize("algorithm", MODEL_BASED)
def test_the_same_seed_proposes_the_same_configurations(tiny_raw, tmp_path, algorithm):
    def run_with(seed):
        cfg = tiny(tiny_raw, tmp_path, algorithm=algorithm, space=CONDITIONAL, seed=seed, n_initial_points=3)
        return proposals(build_searcher(cfg), 6)

    assert run_with(3) == run_with(3) != run_with(4)


def test_ranked_loss_puts_more_epochs_first_then_the_better_value():
    stopped_good = ranked_loss(Fidelity(best=0.1, epochs=1), 4, "min")
    finished_bad = ranked_loss(Fidelity(best=9.0, epochs=4), 4, "min")
    finished_good = ranked_loss(Fidelity(best=0.5, epochs=4), 4, "min")
    self_stopped = ranked_loss(Fidelity(best=0.4, epochs=2, finished=True), 4, "min")
    diverged = ranked_loss(Fidelity(best=math.nan, epochs=4), 4, "min")
    assert self_stopped < finished_good < finished_bad < diverged < stopped_good
    assert ranked_loss(Fidelity(best=0.9, epochs=4), 4, "max") < ranked_loss(Fidelity(best=0.8, epochs=4), 4, "max")


def test_hyperopt_hears_the_best_value_and_epochs_of_a_stopped_trial(tiny_raw, tmp_path):
    searcher = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL))
    for trial_id in ("stopped", "finished"):
        searcher.suggest(trial_id)
    for epoch, value in ((1, 0.3), (2, 0.2)):
        searcher.on_trial_result("finished", {"val_rmse": value, "epoch": epoch})
    # A running trial counts with its fidelity so far, not as infinitely bad (HyperOpt's default).
    assert searcher._hpopt_trials.losses()[1] == ranked_loss(Fidelity(0.2, 2), 3, "min")
    searcher.on_trial_complete("finished", result={"val_rmse": 0.9, "epoch": 3})
    searcher.on_trial_complete("stopped", result={"val_rmse": 0.1, "epoch": 1})
    stopped, finished = searcher._hpopt_trials.losses()
    assert finished == ranked_loss(Fidelity(0.2, 3), 3, "min")  # its best epoch, not its last
    assert stopped > finished  # one epoch of 0.1 does not beat three epochs


def test_hyperopt_restored_mid_sweep_scores_trials_in_its_own_history(tiny_raw, tmp_path):
    searcher = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL))
    searcher.suggest("a")
    searcher.on_trial_result("a", {"val_rmse": 0.5, "epoch": 1})
    searcher.save(str(tmp_path / "searcher.pkl"))  # as Tune does between results
    restored = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL))
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.suggest("b")
    restored.on_trial_complete("a", result={"val_rmse": 0.2, "epoch": 2})
    restored.on_trial_complete("b", result={"val_rmse": 0.9, "epoch": 2})
    scored = [ranked_loss(Fidelity(0.2, 2), 3, "min"), ranked_loss(Fidelity(0.9, 2), 3, "min")]
    assert restored._hpopt_trials.losses() == scored
    assert searcher._hpopt_trials.losses() == [ranked_loss(Fidelity(0.5, 1), 3, "min")]  # the saved one untouched


def test_hyperopt_fits_at_most_max_history_trials_the_best_and_the_latest(tiny_raw, tmp_path):
    searcher = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL, n_initial_points=2, max_history=8))
    tpe, seen = searcher.algo.algo, []

    def recording_tpe(new_ids, domain, trials, seed):
        seen.append([doc["tid"] for doc in trials.trials])
        return tpe(new_ids, domain, trials, seed)

    searcher.algo.algo = recording_tpe
    for i in range(13):  # trial i scores i: the first ones are the best
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result={"val_rmse": float(i), "epoch": 3})
    assert seen[8] == list(range(8))  # up to max_history, the whole history
    assert seen[9] == [0, 1, 3, 4, 5, 6, 7, 8]  # the best quarter, then the latest
    assert seen[12] == [0, 1, 6, 7, 8, 9, 10, 11]


def test_below_max_history_hyperopt_proposes_as_without_it(tiny_raw, tmp_path):
    bounded = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL, max_history=1000))
    unbounded = build_searcher(tiny(tiny_raw, tmp_path, space=CONDITIONAL, max_history=None))
    assert proposals(bounded, 12) == proposals(unbounded, 12)


@pytest.mark.parametrize("algorithm", ["optuna", "bayesopt"])
def test_optuna_is_told_a_stopped_trial_was_pruned(tiny_raw, tmp_path, algorithm):
    searcher = build_searcher(tiny(tiny_raw, tmp_path, algorithm=algorithm, space=CONDITIONAL))
    for trial_id in ("stopped", "finished"):
        searcher.suggest(trial_id)
    searcher.on_trial_result("stopped", {"val_rmse": 0.4, "epoch": 1, "training_iteration": 1})
    searcher.on_trial_complete("stopped", result={"val_rmse": 0.5, "epoch": 2, "training_iteration": 2})
    for epoch, value in ((1, 0.3), (2, 0.2)):
        searcher.on_trial_result("finished", {"val_rmse": value, "epoch": epoch, "training_iteration": epoch})
    searcher.on_trial_complete("finished", result={"val_rmse": 0.9, "epoch": 3, "training_iteration": 3})
    stopped, finished = searcher._ot_study.trials
    assert stopped.state.name == "PRUNED" and stopped.intermediate_values == {1: 0.4}
    assert finished.state.name == "COMPLETE" and finished.value == 0.2


def test_unknown_names_list_the_valid_ones(tiny_raw, tmp_path):
    cfg = tiny(tiny_raw, tmp_path, space=CONDITIONAL)
    cfg.search.algorithm, cfg.search.scheduler = "nope", "nope"
    with pytest.raises(ValueError, match="valid: grid, random, hyperopt, optuna, nsga2, bayesopt"):
        build_searcher(cfg)
    with pytest.raises(ValueError, match="valid: asha, hyperband, median, pbt, fifo"):
        build_scheduler(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grid", "random", *MODEL_BASED])
def test_each_algorithm_runs_a_real_sweep(tiny_raw, tmp_path, local_ray, algorithm):
    space = {"model.hidden_size": {"grid": [4, 8]}} if algorithm == "grid" else CONDITIONAL
    cfg = tiny(tiny_raw, tmp_path, algorithm=algorithm, scheduler="fifo", space=space, num_samples=3)
    results, recorder = run(cfg)
    assert len(results) == (6 if algorithm == "grid" else 3) and results.num_errors == 0
    assert all(epochs == 3 for epochs in recorder.epochs.values())
    for config in recorder.configs.values():
        if algorithm == "grid":
            assert config["model.hidden_size"] in (4, 8)
        else:
            assert ("model.dropout" in config) == (config["model.num_layers"] == 2)
            assert 1.0e-3 <= config["train.lr"] <= 3.0e-2


@pytest.mark.slow
def test_a_model_based_searcher_keeps_every_slot_busy(tiny_raw, tmp_path, local_ray):
    cfg = tiny(tiny_raw, tmp_path, scheduler="fifo", space=CONDITIONAL, num_samples=6)
    _, recorder = run(cfg)
    # Live, not running: a 3-epoch trial can end before a loaded machine starts the next trial's actor.
    assert recorder.most_live == 2  # both CPUs of local_ray


@pytest.mark.slow
def test_a_sweep_with_a_fixed_seed_proposes_the_same_configurations(tiny_raw, tmp_path, local_ray):
    cfg = tiny(tiny_raw, tmp_path, space=CONDITIONAL, num_samples=4, max_concurrent=1, seed=7)
    cfg.train.max_epochs = 2
    first = list(run(cfg, "first")[1].configs.values())
    second = list(run(cfg, "second")[1].configs.values())
    assert first == second and len(first) == 4
