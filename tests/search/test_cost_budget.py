"""search.budget and search.prices: the config's checks, the accounting against a hand computation, and a real
Ray sweep on fake GPUs that stops starting trials and halts at the cap."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_ray.config import BudgetConfig, PricesConfig, parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.search.cost import PRICE_LABEL, Budget, CostLedger, refuse_unpriced_budget, share_price, spend_of

PRICES = PricesConfig(gpu_hour=2.5, cpu_hour=0.05)


def test_budget_and_prices_parse(tiny_raw):
    tiny_raw["search"] |= {"budget": {"gpu_hours": 20, "usd": 150}, "prices": {"gpu_hour": 2.5, "cpu_hour": 0.05}}
    search = parse_config(tiny_raw).search
    assert search.budget == BudgetConfig(gpu_hours=20.0, usd=150.0)
    assert search.prices == PRICES


@pytest.mark.parametrize(
    ("search", "key", "says"),
    [
        ({"budget": {"gpu_hours": -1}}, "search.budget.gpu_hours", "must be > 0, got -1"),
        ({"budget": {}}, "search.budget", "names no limit"),
        ({"budget": {"gpu_hours": 1}, "prices": {"gpu_hour": -2}}, "search.prices.gpu_hour", "must be >= 0"),
        ({"budget": {"dollars": 5}}, "search.budget.dollars", "unknown key"),
    ],
)
def test_a_bad_budget_is_one_error_naming_the_key(tiny_raw, search, key, says):
    tiny_raw["search"] |= search
    with pytest.raises(ConfigError) as err:
        parse_config(tiny_raw)
    assert err.value.key == key and says in str(err.value)


stretch = st.tuples(
    st.sampled_from([0.5, 1.0, 2.0, 4.0]),  # cpu
    st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0, 2.0]),  # gpu: fractions count their fraction
    st.floats(0, 7200),  # start
    st.floats(0, 7200),  # held for
)


@settings(max_examples=200, deadline=None)
@given(st.lists(stretch, min_size=1, max_size=12), st.floats(0, 200))
def test_the_ledger_matches_a_hand_computation_within_five_percent(stretches, now_extra):
    ledger = CostLedger(PRICES)
    for i, (cpu, gpu, start, held) in enumerate(stretches):
        ledger.start(f"t{i}", cpu=cpu, gpu=gpu, now=start)
        ledger.stop(f"t{i}", now=start + held)
    end = max(s + h for _, _, s, h in stretches) + now_extra
    gpu_hours = sum(gpu * held / 3600 for _, gpu, _, held in stretches)
    usd = sum((gpu * 2.5 + cpu * 0.05) * held / 3600 for cpu, gpu, _, held in stretches)
    total = ledger.total(now=end)
    assert total.gpu_hours == pytest.approx(gpu_hours, rel=0.05, abs=1e-9)
    assert total.usd == pytest.approx(usd, rel=0.05, abs=1e-9)
    for i, (cpu, gpu, _, held) in enumerate(stretches):  # per trial too
        assert ledger.trial(f"t{i}", now=end).usd == pytest.approx((gpu * 2.5 + cpu * 0.05) * held / 3600, rel=0.05)


def test_a_trial_held_twice_counts_both_stretches_and_a_running_one_counts_to_now():
    ledger = CostLedger(PRICES)
    ledger.start("a", cpu=1, gpu=0.5, now=0)
    ledger.stop("a", now=3600)
    ledger.start("a", cpu=1, gpu=0.5, now=7200)  # paused by HyperBand in between: nothing held
    assert ledger.trial("a", now=9000).gpu_hours == pytest.approx(0.75)
    assert ledger.running() == ["a"]


def test_the_budget_refuses_a_next_trial_that_could_not_finish_and_reports_the_cap():
    ledger = CostLedger(PRICES)
    budget = Budget(BudgetConfig(gpu_hours=2.0), ledger, max_epochs=10)
    ledger.start("a", cpu=1, gpu=1, now=0)
    assert budget.room_for_next(cpu=1, gpu=1, now=0)  # nothing measured yet
    ledger.epoch("a", 1)  # one epoch per 360 s: a whole trial holds its GPU one hour
    assert not budget.room_for_next(cpu=1, gpu=1, now=360)  # 0.1 + 0.9 left of "a" + 1.0 > 2 would be reached
    assert budget.room_for_next(cpu=1, gpu=0.5, now=360)  # a half-GPU trial still fits: 1.5 < 2
    assert budget.over(now=7199) is None
    assert budget.over(now=7200) == "gpu_hours 2 >= 2"
    assert budget.state(now=3600) == "spent 1/2 GPU-h"
    assert spend_of(2, 0.25, 1800, PRICES).usd == pytest.approx((0.25 * 2.5 + 2 * 0.05) / 2)


DRIVER = """
import json, time, sys
import ray
from ray import tune
from lstm_ray.config import BudgetConfig, PricesConfig
from lstm_ray.search.budgets import CostBudget, limit_trials
from lstm_ray.search.cost import Budget, CostLedger
from ray.tune.search import BasicVariantGenerator

label = sys.argv[3]  # the node's lstm-ray/usd-per-hour, or "" for none
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
         labels={"lstm-ray/usd-per-hour": label} if label else None)
EPOCHS, EPOCH_S = 6, 0.5

def train(config):
    for epoch in range(1, EPOCHS + 1):
        time.sleep(EPOCH_S)
        tune.report({"epoch": epoch, "val_rmse": 1.0 / epoch})

cap = float(sys.argv[1])  # GPU-hours
ledger = CostLedger(PricesConfig(gpu_hour=3.0), slots=int(sys.argv[4]))
cost = CostBudget(Budget(BudgetConfig(gpu_hours=cap, usd=None), ledger, EPOCHS))
logged = {}
cost.log = lambda metrics, trial_id: logged.__setitem__(trial_id or "sweep", metrics)
search = limit_trials(BasicVariantGenerator(max_concurrent=2), slots=2, max_trials=None, hyperband=False,
                      gate=cost.room_for_next)
tuner = tune.Tuner(
    tune.with_resources(train, {"cpu": 0.5, "gpu": 0.5}),
    param_space={"x": tune.uniform(0, 1)},
    tune_config=tune.TuneConfig(search_alg=search, num_samples=20, metric="val_rmse", mode="min"),
    run_config=tune.RunConfig(callbacks=[cost], stop=cost, verbose=0, storage_path=sys.argv[2]),
)
results = tuner.fit()
print("RESULT " + json.dumps({
    "trials": len(results), "reached": cost.reached, "logged": logged, "stopped": cost.stopped,
    "epochs": {r.metrics["trial_id"]: r.metrics.get("epoch", 0) for r in results},
    "trained_s": {r.metrics["trial_id"]: r.metrics.get("time_total_s", 0) for r in results},
}))
"""


def fake_gpu_sweep(tmp_path, cap_gpu_s: float, label: str = "", slots: int = 0) -> dict:
    """The driver above in its own process (its Ray has one fake GPU and 2 CPUs, its node the price `label`):
    two half-GPU trials at once, 6 epochs of 0.5 s each, at most 20 trials, `cap_gpu_s` GPU-seconds, `slots` slots
    counted idle while no trial holds them (0: none)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(cap_gpu_s / 3600), str(tmp_path), label, str(slots)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    out["sweep"] = out["logged"].pop("sweep")
    usd_per_gpu_hour = 3.0 if not label else float(label)  # half the GPU is the larger share: half the node's price
    for metrics in out["logged"].values():
        assert metrics["cost_usd"] == pytest.approx(usd_per_gpu_hour * metrics["gpu_hours"])
    trials = sum(m["gpu_hours"] for m in out["logged"].values())
    assert trials + out["sweep"]["idle_gpu_hours"] == pytest.approx(out["sweep"]["gpu_hours"], rel=0.05)
    return out


def test_no_trial_starts_that_could_not_finish_within_the_budget(tmp_path):
    """Cap 4 GPU-s: the first pair costs about 3 GPU-s in all, a third trial 1.5 more: it never starts, and the
    first two train to their end."""
    out = fake_gpu_sweep(tmp_path, cap_gpu_s=4.0)
    assert out["trials"] == 2 and out["reached"] is None
    assert set(out["epochs"].values()) == {6}
    # The accounting against a hand computation: each trial's half GPU times the time it trained, within 5 %.
    for trial_id, metrics in out["logged"].items():
        assert metrics["gpu_hours"] == pytest.approx(0.5 * out["trained_s"][trial_id] / 3600, rel=0.05)


def test_a_sweep_on_fake_gpus_halts_at_the_cap(tmp_path):
    """Cap 1 GPU-s: the first trial alone reaches it two-thirds into its 3 s (half a GPU); the running trials are
    stopped at their next epoch, no other starts, and the spend passes the cap only while Ray releases them."""
    out = fake_gpu_sweep(tmp_path, cap_gpu_s=1.0)
    assert out["reached"] is not None and out["reached"].startswith("gpu_hours")
    assert out["trials"] <= 2
    assert max(out["epochs"].values()) < 6  # halted before their end
    # Past the cap only while the last results arrive and Ray releases both trials' half GPUs (about a second).
    assert 1.0 <= out["sweep"]["gpu_hours"] * 3600 < 1.0 + 2 * 0.5 * 2.5
    for trial_id, metrics in out["logged"].items():  # a trial holds its share from its start to its release
        assert 0 <= metrics["gpu_hours"] * 3600 - 0.5 * out["trained_s"][trial_id] < 0.5 * 2.5


SWEEP_DRIVER = """
import io, json, sys
import ray
from mlflow.tracking import MlflowClient
from lstm_ray.config import load_config
from lstm_ray.sweep.tuning import run_sweep

ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
path = sys.argv[1]
cfg = load_config(path)
line = io.StringIO()
summary = run_sweep(cfg, config_text=open(path).read(), progress=line)
client = MlflowClient(cfg.tracking.uri)
parent = client.get_run(summary.parent_run_id)
experiment = parent.info.experiment_id
runs = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}'")
print("RESULT " + json.dumps({
    "parent": {k: parent.data.metrics.get(k) for k in ("cost_usd", "gpu_hours", "idle_usd", "idle_gpu_hours")},
    "budget_tag": parent.data.tags.get("lstm_ray.budget"),
    "trials": {r.info.run_id: {k: r.data.metrics.get(k) for k in ("cost_usd", "gpu_hours")} for r in runs},
    "reasons": [r.data.tags.get("lstm_ray.stop_reason") for r in runs],
    "progress": line.getvalue(),
}))
"""


def test_a_budgeted_sweep_logs_its_cost_per_trial_and_on_the_parent_and_shows_it_in_the_progress_line(tmp_path):
    """The whole path through `run_sweep`: half-GPU trials on a fake GPU, a cap of half a GPU-second with prices:
    the first trials reach it before their first result (a trial holds its share from its start, through Ray's
    start-up), so the cap, not the gate, ends the sweep whatever the machine's speed; every trial run holds cost_usd
    and gpu_hours, which add up to the parent run's; the progress line shows the spend against the budget."""
    from cluster_runs import tiny_sweep

    sweep = tiny_sweep(
        tmp_path,
        train={"max_epochs": 6},
        search={
            "algorithm": "random",
            "scheduler": "fifo",
            "num_samples": 8,
            "space": {},
            "budget": {"gpu_hours": 0.5 / 3600, "usd": 100.0},
            "prices": {"gpu_hour": 3.0, "cpu_hour": 0.1},
        },
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SWEEP_DRIVER), str(sweep)], capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    parent, trials = out["parent"], out["trials"]
    assert 0 < len(trials) < 8
    assert parent["gpu_hours"] * 3600 >= 0.5
    assert all(t["gpu_hours"] is not None and t["cost_usd"] is not None for t in trials.values()), trials
    # The parent's total is its trials' and its idle slots' (the slot of a trial that ended until the sweep did).
    trial_gpu_hours = sum(t["gpu_hours"] for t in trials.values())
    assert trial_gpu_hours + parent["idle_gpu_hours"] == pytest.approx(parent["gpu_hours"], rel=0.05)
    assert sum(t["cost_usd"] for t in trials.values()) + parent["idle_usd"] == pytest.approx(
        parent["cost_usd"], rel=0.05
    )
    assert any(r.startswith("stopped at the cost budget (gpu_hours ") for r in out["reasons"]), out["reasons"]
    assert out["budget_tag"].startswith("search.budget ended the sweep: gpu_hours "), out["budget_tag"]
    assert "| spent " in out["progress"] and "/0.000139 GPU-h, $" in out["progress"], out["progress"]


def test_validate_prints_the_estimated_cost_and_a_local_sweep_refuses_usd_without_prices(tiny_raw, tmp_path):
    """trials x epochs x one timed epoch x price, before Ray starts; 3 trials x 2 epochs on one CPU core at
    $36 a CPU-hour is 6 epochs x 1 ct per second of epoch."""
    import re

    import yaml
    from cli_runs import run_cli

    tiny_raw["search"] |= {"num_samples": 3, "budget": {"usd": 1.0}, "prices": {"cpu_hour": 36.0}}
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    found = re.search(
        r"Estimated cost: 3 trials x 2 epochs x ([0-9.e-]+) s .* = 0 GPU-h, .* \$([0-9.]+) at", done.stdout
    )
    assert found, done.stdout
    assert float(found[2]) == pytest.approx(6 * float(found[1]) * 0.01, abs=0.006)  # printed to the cent
    assert "search.budget $1: the estimate fits" in done.stdout
    assert "NO_RAY" in done.stderr

    del tiny_raw["search"]["prices"]  # USD then needs each node's price label: known once Ray runs
    path.write_text(yaml.safe_dump(tiny_raw))
    unpriced = run_cli("validate", str(path))
    assert unpriced.returncode == 0 and "search.budget.usd without search.prices: counted at each node's" in (
        unpriced.stdout
    )
    refused = run_cli("tune", str(path))  # this machine's Ray has no price label: refused before Ray starts
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "error: search.budget.usd: 1 USD cannot be counted without prices" in refused.stderr
    assert "starting Ray" not in refused.stdout


def test_a_labelled_node_prices_the_larger_share_the_trial_holds():
    """A trial pays its node's lstm-ray/usd-per-hour times the larger of its GPU and CPU shares; a node without
    the label (or with a label that is no price) leaves it to search.prices."""
    node = {"CPU": 48.0, "GPU": 4.0}
    price = {PRICE_LABEL: "5.672"}  # g5.12xlarge on demand
    assert share_price(4, 1, node, price) == pytest.approx(5.672 / 4)  # a quarter of the GPUs
    assert share_price(24, 0.5, node, price) == pytest.approx(5.672 / 2)  # half the cores weighs more
    assert share_price(96, 8, node, price) == pytest.approx(5.672)  # never more than the node
    assert share_price(2, 0, {"CPU": 8.0}, {PRICE_LABEL: "0.384"}) == pytest.approx(0.096)
    assert share_price(1, 1, node, {}) is None
    assert share_price(1, 1, node, {PRICE_LABEL: "cheap"}) is None
    ledger = CostLedger(PRICES)
    ledger.start("labelled", cpu=4, gpu=1, now=0, usd_per_hour=share_price(4, 1, node, price))
    ledger.start("unlabelled", cpu=4, gpu=1, now=0)
    assert ledger.trial("labelled", now=1800).usd == pytest.approx(5.672 / 8)
    assert ledger.trial("unlabelled", now=1800).usd == pytest.approx((2.5 + 4 * 0.05) / 2)


def test_a_usd_budget_needs_a_price_for_every_node_a_trial_may_run_on(tiny_raw):
    tiny_raw["search"] |= {"budget": {"usd": 150}}
    cfg = parse_config(tiny_raw)  # the cluster is not known yet: accepted here
    refuse_unpriced_budget(cfg, [{PRICE_LABEL: "1.006"}, {PRICE_LABEL: "3.06", "other": "x"}])
    with pytest.raises(ConfigError) as err:
        refuse_unpriced_budget(cfg, [])  # the Ray this process starts has no label
    assert err.value.key == "search.budget.usd" and "cannot be counted without prices" in str(err.value)
    with pytest.raises(ConfigError, match="1 of the cluster's 2 node"):
        refuse_unpriced_budget(cfg, [{PRICE_LABEL: "1.006"}, {}])
    tiny_raw["search"]["prices"] = {"gpu_hour": 2.5}  # the fallback for unlabelled nodes
    refuse_unpriced_budget(parse_config(tiny_raw), [{}])


busy = st.lists(st.tuples(st.floats(0, 3600), st.floats(1, 3600)), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(busy, st.integers(1, 4), st.floats(0, 600))
def test_idle_slots_match_a_hand_computation_within_five_percent(stretches, slots, tail):
    """Trials of half a GPU in `slots` slots: from the first start to the end, each slot no trial holds costs
    what a trial would (the hand computation integrates the free slots over time on a fine grid)."""
    ledger = CostLedger(PRICES, slots=slots)
    events = sorted(
        [(s, "start", i) for i, (s, _) in enumerate(stretches)]
        + [(s + h, "stop", i) for i, (s, h) in enumerate(stretches)]
    )
    for now, kind, i in events:
        if kind == "start":
            ledger.start(f"t{i}", cpu=1, gpu=0.5, now=now)
        else:
            ledger.stop(f"t{i}", now=now)
    first, end = min(s for s, _ in stretches), max(s + h for s, h in stretches) + tail
    ledger.end(now=end)
    cuts = sorted({first, end, *(t for s, h in stretches for t in (s, s + h))})
    free = sum(  # between two cuts the number of running trials does not change
        (b - a) * max(0, slots - sum(s <= a < s + h for s, h in stretches)) for a, b in itertools.pairwise(cuts)
    )
    idle = ledger.idle(now=end + 999)  # nothing accrues after the end
    assert idle.gpu_hours == pytest.approx(0.5 * free / 3600, rel=0.05, abs=1e-6)
    assert idle.usd == pytest.approx((0.5 * 2.5 + 0.05) * free / 3600, rel=0.05, abs=1e-6)
    assert ledger.total(now=end).usd == pytest.approx(
        idle.usd + sum(ledger.trial(t, now=end).usd for t in ledger.trials), rel=1e-9
    )


def test_a_snapshot_carries_the_spend_into_a_resumed_ledger():
    """What Tune saves with the experiment (`CostBudget.get_state`): each open stretch closed at the snapshot; the
    restored ledger counts it, and a trial started again adds its new stretch."""
    ledger = CostLedger(PRICES, slots=2)
    ledger.start("a", cpu=1, gpu=1, now=0)
    ledger.epoch("a", 3)
    saved = json.loads(json.dumps(ledger.snapshot(now=3600)))  # plain data
    resumed = CostLedger(PRICES, slots=2)
    resumed.restore(saved)
    assert resumed.running() == [] and resumed.trials["a"].epochs == 3
    assert resumed.total(now=0).gpu_hours == pytest.approx(1 + 1)  # "a" and the slot it left free, for an hour
    resumed.start("a", cpu=1, gpu=1, now=100)
    assert resumed.trial("a", now=1900).gpu_hours == pytest.approx(1.5)


def test_a_node_price_label_prices_each_trial_by_its_share_and_the_idle_slots_count(tmp_path):
    """The fake-GPU sweep on a node labelled lstm-ray/usd-per-hour 7.2 (search.prices says 3 per GPU-hour): each
    half-GPU trial pays half the node's price (checked in fake_gpu_sweep), and the sweep's 2 slots, held from the
    first start to the end, add what they held while no trial ran in them at the same rate."""
    out = fake_gpu_sweep(tmp_path, cap_gpu_s=6.0, label="7.2", slots=2)
    sweep = out["sweep"]
    assert sweep["idle_gpu_hours"] > 0  # the second trial started after the first, and the first ended before it
    assert sweep["idle_usd"] == pytest.approx(7.2 * sweep["idle_gpu_hours"])
    assert sweep["cost_usd"] == pytest.approx(7.2 * sweep["gpu_hours"], rel=0.05)
