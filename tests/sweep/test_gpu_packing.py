"""resources.gpu: auto: per-trial GPU shares sized by the memory estimate, the largest trial checked before the
sweep, and the packing on a local cluster's fake GPU (Ray's logical GPUs; trials train on the CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from cli_runs import run_cli
from cluster_runs import VENV_BIN, local_cluster, lstm_ray, stop, tiny_sweep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.config import apply_params, parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.errors import ConfigError
from lstm_ray.sweep.capacity import NodeType, trial_demand
from lstm_ray.sweep.gpu_packing import (
    GPU_MEMORY_LABEL,
    SAFETY_BYTES,
    SAFETY_FACTOR,
    SHARE_STEP,
    DataShape,
    GpuPacking,
    gpu_memory_of,
    share_of_gpu,
)
from lstm_ray.train.memory_estimate import TrialMemory

SETTINGS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
GB = 10**9


@pytest.fixture(scope="module")
def tiny_data():
    from conftest import TINY

    return prepare_sweep_data(parse_config(TINY))


def auto(tiny_raw: dict, space: dict | None = None, **resources) -> dict:
    return tiny_raw | {
        "search": {"num_samples": 2, "space": space or {}},
        "resources": {"cpu": 1, "gpu": "auto", **resources},
    }


def memory(total: int) -> TrialMemory:
    return TrialMemory(weights=0, gradients=0, optimizer=0, half_weights=0, activations=0, context=total)


@SETTINGS
@given(need=st.integers(1, 200 * GB), gpu_gb=st.integers(1, 200))
def test_a_share_is_the_smallest_sixteenth_that_holds_the_need_with_its_margin(need, gpu_gb):
    share = share_of_gpu(memory(need), gpu_gb * GB)
    wanted = need * SAFETY_FACTOR + SAFETY_BYTES
    assert share * gpu_gb * GB >= wanted * (1 - 1e-9)
    assert (share - SHARE_STEP) * gpu_gb * GB < wanted
    assert math.isclose(share / SHARE_STEP, round(share / SHARE_STEP))


def test_auto_parses_and_a_misspelling_is_one_line(tiny_raw):
    assert parse_config(auto(tiny_raw)).resources.gpu == "auto"
    with pytest.raises(ConfigError, match=r"^resources\.gpu: expected a finite number or one of 'auto', got 'Auto'$"):
        parse_config(tiny_raw | {"resources": {"gpu": "Auto"}})


def test_auto_asks_ray_for_the_smallest_share_when_counting_what_fits(tiny_raw):
    assert trial_demand(parse_config(auto(tiny_raw))) == {"CPU": 1.0, "GPU": SHARE_STEP}


def test_bigger_trials_get_bigger_shares(tiny_raw, tiny_data):
    cfg = parse_config(auto(tiny_raw))
    packing = GpuPacking(cfg, DataShape.of(tiny_data), 4 * GB)
    shares = [packing.share(apply_params(cfg, {"model.hidden_size": h})) for h in (8, 1024, 4096)]
    assert shares == sorted(shares) and shares[0] < shares[-1] <= 1.0
    params = packing.trial_resources({"model.hidden_size": 4096})
    assert params == {"cpu": 1.0, "gpu": shares[-1], "memory": 0}


@SETTINGS
@given(
    hidden=st.lists(st.sampled_from([8, 64, 512, 2048, 8192]), min_size=1, max_size=3, unique=True),
    batch=st.lists(st.sampled_from([16, 256, 4096, 65536]), min_size=1, max_size=3, unique=True),
    gpu_gb=st.sampled_from([1, 4, 16, 80]),
)
def test_the_largest_trial_of_the_space_must_fit_a_gpu_and_the_error_names_its_values(
    tiny_raw, tiny_data, hidden, batch, gpu_gb
):
    space = {"model.hidden_size": {"choice": hidden}, "train.batch_size": {"choice": batch}}
    cfg = parse_config(auto(tiny_raw, space))
    packing = GpuPacking(cfg, DataShape.of(tiny_data), gpu_gb * GB)
    largest = apply_params(cfg, {"model.hidden_size": max(hidden), "train.batch_size": max(batch)})
    fits = share_of_gpu(packing.memory(largest), gpu_gb * GB) <= 1
    if fits:
        packing.check_largest_trial()
        return
    with pytest.raises(ConfigError) as refused:
        packing.check_largest_trial()
    assert refused.value.key == "resources.gpu" and "\n" not in str(refused.value)
    assert f"model.hidden_size={max(hidden)}" in refused.value.message
    assert f"train.batch_size={max(batch)}" in refused.value.message
    assert f"the smallest GPU has {gpu_gb * GB / 2**30:.1f} GiB" in refused.value.message


def test_gpu_memory_comes_from_the_label_the_accelerator_type_or_this_machine():
    labelled = {"Alive": True, "Resources": {"GPU": 4.0}, "Labels": {GPU_MEMORY_LABEL: "24"}}
    a100 = {"Alive": True, "Resources": {"GPU": 8.0, "accelerator_type:A100": 1.0}, "Labels": {}}
    cpu_only = {"Alive": True, "Resources": {"CPU": 8.0}, "Labels": {}}
    assert gpu_memory_of([labelled, a100, cpu_only]) == 24 * GB  # the smallest GPU sizes every share
    assert gpu_memory_of([], [NodeType("t4", {"GPU": 1.0}, 2, {GPU_MEMORY_LABEL: "16"})]) == 16 * GB
    mine = {"Alive": True, "Resources": {"GPU": 1.0}, "Labels": {}, "NodeManagerAddress": "10.0.0.5"}
    assert gpu_memory_of([mine], here=("10.0.0.5", 80 * GB)) == 80 * GB
    with pytest.raises(ConfigError, match=rf"^resources\.gpu: auto needs each GPU's memory .*{GPU_MEMORY_LABEL}"):
        gpu_memory_of([mine])
    with pytest.raises(ConfigError, match=r"^resources\.gpu: auto shares GPUs but no node has one yet"):
        gpu_memory_of([cpu_only])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU to share")
def test_auto_on_a_machine_without_gpus_is_one_line_before_ray(tiny_raw, tmp_path, monkeypatch):
    raw = auto(tiny_raw) | {"tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(raw | {"storage": {"path": str(tmp_path / "results")}}))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    done = run_cli("tune", "auto.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line not in ("NO_RAY", "RAY_IMPORTED")]
    assert lines == [
        "error: resources.gpu: auto shares this machine's GPUs but it has none (no --address: Ray starts here); "
        "set resources.gpu: 0, or run the sweep on a cluster with GPUs (--address)"
    ]
    assert "NO_RAY" in done.stderr.splitlines() and not (tmp_path / "results").exists()


# --- on a local cluster with a fake GPU ------------------------------------------------------------------

GPU_GB = 12  # the fake GPU's memory (its node's label): a tiny trial's share is 2/16, a fixed 0.25 fits 4
DRIVER = """
import json, sys
from ray import tune
from lstm_ray.config import apply_params, load_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.sweep.gpu_packing import DataShape, GpuPacking
from lstm_ray.sweep.tuning import run_sweep

cfg = load_config(sys.argv[1])
data = prepare_sweep_data(cfg)
packing = GpuPacking(cfg, DataShape.of(data), {gpu_gb} * 10**9)

class Watch(tune.Callback):
    running, most, seen = {{}}, 0, []

    def on_trial_start(self, iteration, trials, trial, **info):
        share = trial.placement_group_factory.required_resources.get("GPU", 0.0)
        need = packing.memory(apply_params(cfg, trial.config)).total
        self.running[trial.trial_id] = (share, need)
        self.seen.append(dict(running=len(self.running), shares=sum(s for s, _ in self.running.values()),
                              needs=sum(n for _, n in self.running.values()), share=share, need=need))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)

    on_trial_error = on_trial_complete

watch = Watch()
run_sweep(cfg, config_text=open(sys.argv[1]).read(), data=data, address=sys.argv[2], callbacks=[watch])
print("WATCH " + json.dumps(watch.seen))
"""


@pytest.mark.slow
@pytest.mark.cluster
def test_auto_packs_more_trials_on_a_fake_gpu_than_a_quarter_each_and_never_overcommits_it(tmp_path):
    """Head without CPUs + one worker with 8 logical CPUs and one fake 12 GB GPU: eight tiny trials, each given the
    share its estimate needs (2/16), run more than four at once (a fixed 0.25 fits four); at every trial start the
    running trials' shares sum to at most one GPU and their estimated needs to at most its memory. A search space
    whose largest trial needs more than 12 GB is one error line before the sweep."""
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "RAY_OVERRIDE_LABELS": json.dumps({GPU_MEMORY_LABEL: "12"})}
    cluster = local_cluster.start_cluster(
        tmp_path / "cluster", workers=1, gpus_per_worker=1, cpus_per_worker=8, extra_env=env
    )
    try:
        sweep = tiny_sweep(
            tmp_path,
            train={"max_epochs": 6, "batch_size": 128, "lr": 0.01},
            search={"algorithm": "random", "scheduler": "fifo", "num_samples": 8, "space": {}},
            resources={"cpu": 0.5, "gpu": "auto"},
            tracking={"enabled": False, "uri": f"sqlite:///{tmp_path}/mlflow.db"},
        )
        driver = textwrap.dedent(DRIVER.format(gpu_gb=GPU_GB))
        done = subprocess.run(
            [sys.executable, "-c", driver, str(sweep), cluster.gcs_address],
            env=cluster.client_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        seen = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("WATCH "))[6:])
        assert len(seen) == 8 and all(s["share"] == 2 * SHARE_STEP for s in seen)
        assert all(s["shares"] <= 1.0 and s["needs"] <= GPU_GB * GB for s in seen)
        assert max(s["running"] for s in seen) > 4, seen  # more than four trials of 0.25 could hold

        too_big = yaml.safe_load(sweep.read_text())
        too_big["search"]["space"] = {"model.hidden_size": {"choice": [8, 16384]}}
        sweep.write_text(yaml.safe_dump(too_big))
        refused = lstm_ray(cluster, "tune", str(sweep), "--address", cluster.gcs_address, timeout=300)
        assert refused.returncode == 2, f"{refused.stdout}\n{refused.stderr}"
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith(
            "error: resources.gpu: auto: the largest trial of the search space (model.hidden_size=16384"
        )
        assert "Trial" not in refused.stdout  # no trial started
    finally:
        stop(cluster)
