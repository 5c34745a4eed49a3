"""`lstm-ray replay`: the simulation on synthetic curves (no Ray, no MLflow), then a real tiny sweep recorded in MLflow
and replayed: its own policy reproduces its ASHA stops exactly; another reduction factor changes the compute."""

from __future__ import annotations

import copy

import pytest
from conftest import TINY
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from lstm_ray import cli, outcomes
from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.reports.record import SweepRecord, TrialRecord
from lstm_ray.search.replay import RecordedCurves, RecordedTrial, simulate
from lstm_ray.sweep.replay import recorded_slots, recorded_trials, replay_sweep

LRS = [0.03, 3.0e-4, 0.01, 1.0e-4]  # grid order: the best first, a poor one, a middling one, the worst
RECORDED_LRS = [1.0e-4, 3.0e-4, 0.03, 0.01]  # the real sweep's order: the middling one last


def synthetic(lrs: list[float], epochs: int, seconds: float = 1.0) -> RecordedCurves:
    """One recorded trial per learning rate, trained to the end, its val_rmse falling faster the larger lr is."""
    trials = [
        RecordedTrial(
            f"t_{i:05d}",
            {"train.lr": lr},
            [{"val_rmse": 1.0 / (1.0 + lr * 100 * e)} for e in range(1, epochs + 1)],
            [seconds] * epochs,
            True,
        )
        for i, lr in enumerate(lrs)
    ]
    return RecordedCurves(trials)


def policy(**search) -> dict:
    raw = copy.deepcopy(TINY)
    raw["train"]["max_epochs"] = 4
    raw["search"] = {"algorithm": "grid", "num_samples": 1, "grace_period": 1, "space": {"train.lr": {"grid": LRS}}}
    raw["search"] |= search
    return raw


@settings(max_examples=25, deadline=None)
@given(slots=st.integers(1, 6), seconds=st.floats(0.1, 10.0))
def test_fifo_trains_every_trial_to_the_end_and_the_clock_fits_the_slots(slots, seconds):
    cfg = parse_config(policy(scheduler="fifo"))
    replay = simulate(cfg, synthetic(LRS, 4, seconds), slots)
    assert replay.epochs == 16 and replay.compute_s == pytest.approx(16 * seconds)
    # All epochs last the same: the trials run in ceil(4 / slots) waves of 4 epochs.
    assert replay.wall_s == pytest.approx(-(-4 // slots) * 4 * seconds)
    assert replay.winner().config == {"train.lr": 0.03} and not replay.filled


def test_asha_stops_the_slow_learners_of_a_serial_sweep():
    cfg = parse_config(policy(scheduler="asha", reduction_factor=2))
    replay = simulate(cfg, synthetic(LRS, 4), slots=1)
    # lr 3e-4 and 1e-4 are worse than everything before them at the first rung; 0.01 is second of three.
    assert [t.epochs for t in replay.trials] == [4, 1, 2, 1]
    # x4 keeps a quarter at its one rung (epoch 1): 0.01 goes too.
    cfg = parse_config(policy(scheduler="asha", reduction_factor=4))
    assert [t.epochs for t in simulate(cfg, synthetic(LRS, 4), slots=1).trials] == [4, 1, 1, 1]


def test_hyperband_pauses_and_resumes_within_the_slots():
    cfg = parse_config(policy(scheduler="hyperband", reduction_factor=2, num_samples=3))
    replay = simulate(cfg, synthetic(LRS, 4), slots=2)
    # Brackets of 3 trials to 4 epochs, 3 from 2 epochs, 4 from 1 epoch: the last two halve theirs (paused
    # trials wait for their bracket while the slots train the others).
    assert len(replay.trials) == 12 and replay.epochs < 48 and {t.epochs for t in replay.trials} == {1, 2, 4}
    assert replay.winner().config == {"train.lr": 0.03}


def test_configurations_never_trained_are_filled_from_the_nearest():
    raw = policy(scheduler="fifo")
    raw["search"]["space"] = {"train.lr": {"grid": [0.02, 0.03]}}
    replay = simulate(parse_config(raw), synthetic(LRS, 4), slots=2)
    filled = {t.config["train.lr"]: t.filled_epochs for t in replay.trials}
    assert filled == {0.02: 4, 0.03: 0}


@settings(max_examples=50, deadline=None)
@given(a=st.floats(1e-4, 0.1), b=st.floats(1e-4, 0.1), cell_a=st.sampled_from(["lstm", "gru"]),
       cell_b=st.sampled_from(["lstm", "gru"]))  # fmt: skip
def test_distance_is_symmetric_bounded_and_zero_only_for_the_same_values(a, b, cell_a, cell_b):
    curves = RecordedCurves(
        [RecordedTrial(f"t_{i}", {"train.lr": lr, "model.cell": c}, [{"v": 1.0}], [1.0], True)
         for i, (lr, c) in enumerate([(1e-4, "lstm"), (0.1, "gru")])]
    )  # fmt: skip
    x, y = {"train.lr": a, "model.cell": cell_a}, {"train.lr": b, "model.cell": cell_b}
    d = curves.distance(x, y)
    assert 0.0 <= d <= 1.0 and d == pytest.approx(curves.distance(y, x))
    assert (d == 0.0) == (a == b and cell_a == cell_b)


@pytest.mark.parametrize("algorithm", ["hyperopt", "optuna", "random"])
def test_model_based_searchers_propose_from_the_recorded_choices(algorithm):
    raw = policy(algorithm=algorithm, scheduler="asha", num_samples=8, n_initial_points=2)
    raw["search"]["space"] = {"train.lr": {"choice": LRS}}
    replay = simulate(parse_config(raw), synthetic(LRS, 4), slots=2)
    assert len(replay.trials) == 8 and {t.config["train.lr"] for t in replay.trials} <= set(LRS)
    assert not replay.filled and replay.epochs < 32  # every choice was recorded; ASHA stopped some


def test_slots_default_to_the_most_trial_runs_that_overlapped():
    from types import SimpleNamespace as Run

    cfg = parse_config(policy())
    runs = [Run(start_time=0, end_time=10), Run(start_time=5, end_time=20), Run(start_time=10, end_time=30),
            Run(start_time=12, end_time=14)]  # fmt: skip
    assert recorded_slots(cfg, runs) == 3  # 12..14: the second, third and fourth (the first ended at 10)
    assert recorded_slots(parse_config(policy(max_concurrent=5)), runs) == 5


def test_a_trial_ends_where_every_recorded_curve_ends():
    short = RecordedCurves([RecordedTrial("t_00000", {"train.lr": 0.03}, [{"val_rmse": 0.5}] * 2, [1.0, 1.0], False)])
    replay = simulate(parse_config(policy(scheduler="fifo")), short, slots=2)
    assert [t.epochs for t in replay.trials] == [2, 2, 2, 2] and replay.wall_s == 4.0


def test_pbt_cannot_be_replayed():
    cfg = parse_config(policy(scheduler="pbt"))
    with pytest.raises(ConfigError, match="search.scheduler"):
        simulate(cfg, synthetic(LRS, 4), slots=1)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, local_ray):
    """A real sweep: 4 grid trials one at a time (a known arrival order), ASHA grace 1 x3 to 2 epochs, in MLflow.

    At epoch 1 lr 0.01 lies between the small learning rates and 0.03: ASHA x3 stops it, x2 would not."""
    from lstm_ray.sweep.tuning import run_sweep

    folder = tmp_path_factory.mktemp("replay")
    raw = copy.deepcopy(TINY)
    raw["train"] |= {"max_epochs": 2, "batch_size": 64}
    raw["model"]["hidden_size"] = 4
    raw["search"] = {
        "algorithm": "grid",
        "num_samples": 1,
        "scheduler": "asha",
        "grace_period": 1,
        "reduction_factor": 3,
        "max_concurrent": 1,
        "space": {"train.lr": {"grid": RECORDED_LRS}},
    }
    raw["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": "replayed", "report": False,
                       "checkpoints": "none"}  # fmt: skip
    raw["storage"] = {"path": str(folder / "results")}
    summary = run_sweep(parse_config(raw), config_text="")
    return raw["tracking"]["uri"], summary.parent_run_id


@pytest.mark.slow
def test_replaying_a_sweep_with_its_own_policy_reproduces_its_asha_stops(recorded):
    uri, parent = recorded
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    ordered = sorted(runs, key=lambda r: r.data.tags["lstm_ray.trial_id"])
    as_run = [(float(r.data.params["train.lr"]), int(r.data.tags["lstm_ray.epochs"])) for r in ordered]
    assert any(r.data.tags["lstm_ray.outcome"] == outcomes.STOPPED_EARLY for r in runs)  # ASHA had work to do
    comparison = replay_sweep("replayed", [], slots=None, tracking_uri=uri)
    replayed = [(t.config["train.lr"], t.epochs) for t in comparison.recorded.trials]
    assert comparison.slots == 1 and replayed == as_run and not comparison.recorded.filled
    assert comparison.recorded.epochs == comparison.as_run.epochs == sum(e for _, e in as_run)
    assert comparison.regret(comparison.recorded) == 0.0


@pytest.mark.slow
def test_each_epoch_lasts_its_logged_seconds_on_the_replay_clock(recorded):
    uri, parent = recorded
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    logged = {}
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "epoch_seconds")
        assert sorted(m.step for m in history) == list(range(1, int(run.data.tags["lstm_ray.epochs"]) + 1))
        logged[run.data.tags["lstm_ray.trial_id"]] = [m.value for m in sorted(history, key=lambda m: m.step)]
    total = sum(sum(seconds) for seconds in logged.values())
    comparison = replay_sweep("replayed", [], slots=None, tracking_uri=uri)
    assert (
        comparison.timed == 4 and "Epoch times: as logged per epoch (epoch_seconds) by all 4" in comparison.lines()[-1]
    )
    # One trial at a time, the same epochs as run: the clock is the sum of the logged epochs.
    assert comparison.recorded.wall_s == pytest.approx(total) and comparison.as_run.compute_s == pytest.approx(total)
    assert comparison.recorded.compute_s == pytest.approx(total)


def test_a_sweep_without_epoch_seconds_spreads_each_run_over_its_epochs():
    from types import SimpleNamespace as Info

    import pandas as pd

    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.5, 0.4], "val_rmse": [0.9, 0.8]})
    record = SweepRecord("old", "val_rmse", "min", "asha", 1, 2, 2, {},
                         trials=[TrialRecord("t_00000", {"train.lr": 0.01}, history, outcomes.COMPLETED)])  # fmt: skip
    [trial] = recorded_trials(record, {"t_00000": Info(start_time=1_000, end_time=4_000)})
    assert trial.seconds == [1.5, 1.5] and trial.metrics == [{"train_loss": 0.5, "val_rmse": 0.9},
                                                              {"train_loss": 0.4, "val_rmse": 0.8}]  # fmt: skip
    timed = history.assign(epoch_seconds=[0.25, 0.75])
    record.trials[0].history = timed
    [trial] = recorded_trials(record, {"t_00000": Info(start_time=1_000, end_time=4_000)})
    assert trial.seconds == [0.25, 0.75] and "epoch_seconds" not in trial.metrics[0]


@pytest.mark.slow
def test_a_single_metric_sweep_replays_as_multi_objective_on_what_its_trials_logged(recorded):
    uri, parent = recorded
    size = "search.objectives=[{metric: val_rmse, mode: min}, {metric: model_parameters, mode: min}]"
    comparison = replay_sweep(parent, [size], slots=None, tracking_uri=uri)
    # One size for all (only train.lr is searched): the front is the best val_rmse (ties included), at that size.
    front, winner = comparison.new.front(), comparison.new.winner()
    assert winner in front and {t.best for t in front} == {winner.best}
    assert {t.objectives["model_parameters"] for t in comparison.new.trials} == {winner.objectives["model_parameters"]}
    latency = "search.objectives=[{metric: val_rmse, mode: min}, {metric: latency_ms, mode: min}]"
    with pytest.raises(ConfigError, match="search.objectives: the sweep's trials logged no latency_ms"):
        replay_sweep(parent, [latency], slots=None, tracking_uri=uri)


@pytest.mark.slow
def test_another_reduction_factor_changes_the_compute(recorded):
    uri, parent = recorded
    comparison = replay_sweep(parent, ["search.reduction_factor=2"], slots=None, tracking_uri=uri)
    assert [t.epochs for t in comparison.recorded.trials][-1] == 1  # x3: lr 0.01 stopped at the first rung
    assert comparison.new.epochs == comparison.recorded.epochs + 1  # x2: it trains its second epoch
    assert comparison.new.compute_s > comparison.recorded.compute_s
    assert len(comparison.new.filled) == 1  # that epoch was never trained: it comes from a neighbour's curve


@pytest.mark.slow
def test_replay_command_prints_both_policies_side_by_side(recorded, capsys):
    uri, _ = recorded
    args = ["replay", "replayed", "--set", "search.scheduler=hyperband", "--set", "search.reduction_factor=3"]
    assert cli.main([*args, "--slots", "8", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "(8 at a time;" in out and "recorded policy" in out and "new policy" in out
    assert all(row in out for row in ("wall time (s)", "compute (trial-epochs)", "compute (s)", "regret"))


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["absent"], "error: SWEEP: 'absent' is neither an MLflow experiment nor a run"),
        (["x", "--set", "train.lr=0.1"], "error: --set: 'train.lr' is not a search setting"),
        (["x", "--set", "search.bogus=1"], "error: --set: 'search.bogus' is not a search setting"),
        (["x", "--slots", "0"], "error: --slots: must be at least 1"),
    ],
)
def test_bad_flags_are_one_error_line_and_exit_2(tmp_path, capsys, args, start):
    code = cli.main(["replay", *args, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(start) and len(err.splitlines()) == 1


def test_a_cost_budget_is_replayed_on_the_simulated_clock():
    # A core-second costs $1: a 4-epoch trial of 1 s epochs on 1 core costs $4.
    budgeted = {"budget": {"usd": 9}, "prices": {"cpu_hour": 3600.0}}
    serial = simulate(parse_config(policy(scheduler="fifo", **budgeted)), synthetic(LRS, 4), slots=1)
    # $4 spent, $4 for the next: it starts; $8 spent, $4 more would pass $9: no third trial.
    assert len(serial.trials) == 2 and serial.spend.usd == pytest.approx(8.0)
    assert serial.budget_stop == "the next trial could not have finished within it"
    capped = simulate(parse_config(policy(scheduler="fifo", **budgeted | {"budget": {"usd": 7}})), synthetic(LRS, 4), 2)
    # Two start before any epoch is measured; at 4 s the first ends, they have spent $8 >= $7, and the second
    # stops there with the 3 epochs it finished.
    assert [t.epochs for t in capped.trials] == [4, 3]
    assert capped.spend.usd == pytest.approx(8.0) and capped.budget_stop == "at the cap: usd 8 >= 7"
    unpriced = parse_config(policy(scheduler="fifo", budget={"usd": 7}))
    with pytest.raises(ConfigError, match="search.budget.usd"):
        simulate(unpriced, synthetic(LRS, 4), 1)
