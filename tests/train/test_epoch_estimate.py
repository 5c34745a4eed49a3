"""The pre-Ray estimate of one epoch (train/epoch_estimate.py) and the search.time_budget it refuses.

Real training on real data on this machine's CPU: the estimate is compared with epochs a trial's own Trainer
(`sweep/trainable.build_trainer`, no Ray started) trains on the same data.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch
import yaml
from cli_runs import run_cli
from conftest import TINY
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.data.synthetic import noisy_seasonal
from lstm_ray.errors import ConfigError
from lstm_ray.train.epoch_estimate import cheapest_trial, check_time_budget, estimate_epoch

ROWS = 2000  # an epoch of about 0.01-2 s at the generated shapes
TIMING = settings(max_examples=4, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    path = tmp_path_factory.mktemp("series") / "seasonal.parquet"
    import pyarrow.parquet as pq

    pq.write_table(noisy_seasonal(n_rows=ROWS), path)
    return path


def experiment(series, **sections) -> dict:
    raw = copy.deepcopy(TINY)
    raw["data"] = {"source": str(series), "target": "y", "time_column": "t", "lookback": 24, "horizon": 1}
    for section, values in sections.items():
        raw[section] = raw[section] | values
    return raw


def real_epoch_s(cfg) -> float:
    """The quicker of two epochs, after a warm-up one, of the Trainer a trial of `cfg` builds (torch threads =
    resources.cpu, as a trial sets them)."""
    from lstm_ray.sweep.trainable import build_trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg.resources.cpu)))
    try:
        trainer = build_trainer(cfg, prepare_sweep_data(cfg), torch.device("cpu"))
        trainer.run_epoch()
        times = []
        for _ in range(2):
            start = time.perf_counter()
            trainer.run_epoch()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return min(times)


@pytest.mark.slow
@TIMING  # timings: no shrinking, which would repeat them for minutes
@given(
    hidden_size=st.sampled_from([4, 16, 48, 96]),
    batch_size=st.sampled_from([16, 64, 256]),
    lookback=st.integers(4, 48),
    cell=st.sampled_from(["lstm", "gru"]),
    validation=st.sampled_from(["holdout", "cv"]),
)
def test_the_estimate_is_within_a_factor_of_3_of_a_real_epoch(
    series, hidden_size, batch_size, lookback, cell, validation
):
    raw = experiment(series, model={"cell": cell, "hidden_size": hidden_size}, train={"batch_size": batch_size})
    raw["data"] |= {"lookback": lookback, "validation": validation, "folds": 3}
    cfg = parse_config(raw)
    estimate = estimate_epoch(cfg, prepare_sweep_data(cfg))
    real = real_epoch_s(cfg)
    assert estimate is not None and estimate.device == "cpu" and estimate.threads == 1
    assert real / 3 <= estimate.seconds <= real * 3, f"estimated {estimate.seconds:.3f} s, measured {real:.3f} s"


@pytest.fixture(scope="module")
def long_epoch(series):
    """A config whose epoch takes about a second here, and that epoch measured."""
    raw = experiment(series, model={"hidden_size": 64}, train={"batch_size": 16})
    return raw, real_epoch_s(parse_config(raw))


@TIMING
@given(share=st.floats(0.0001, 0.1))
def test_a_budget_far_below_an_epoch_is_refused_naming_the_estimate(long_epoch, share):
    raw, real = long_epoch
    cfg = parse_config(raw | {"search": raw["search"] | {"time_budget": share * real}})
    with pytest.raises(ConfigError) as caught:
        check_time_budget(cfg, prepare_sweep_data(cfg))
    assert caught.value.key == "search.time_budget"
    assert "cannot finish one epoch of any trial" in str(caught.value) and "raise search.time_budget" in str(
        caught.value
    )


def test_validate_refuses_a_budget_shorter_than_an_epoch_in_one_line_without_ray(long_epoch, tmp_path):
    raw, _ = long_epoch
    raw = raw | {"search": raw["search"] | {"time_budget": 0.01}}
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = run_cli("validate", str(path))
    assert done.returncode == 2, done.stderr
    error, ray_imported = done.stderr.strip().splitlines()
    assert error.startswith("error: search.time_budget: 0.01 (0.01 s) cannot finish one epoch of any trial")
    assert "training batches" in error and "raise search.time_budget" in error
    assert ray_imported == "NO_RAY"


def test_validate_passes_a_generous_budget(series, tmp_path):
    path = tmp_path / "generous.yaml"
    path.write_text(yaml.safe_dump(experiment(series, search={"time_budget": "2h"})))
    done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: tiny:")


def test_the_estimate_times_the_cheapest_trial_the_space_allows(series):
    space = {
        "model.hidden_size": {"choice": [64, 4, 32]},
        "model.num_layers": {"randint": [1, 4]},
        "train.batch_size": {"choice": [16, 512]},
        "data.stride": {"choice": [1, 3]},
        "train.lr": {"loguniform": [0.001, 0.1]},
    }
    cfg = parse_config(experiment(series, model={"hidden_size": 64, "num_layers": 3}, search={"space": space}))
    cheapest = cheapest_trial(cfg)
    assert (cheapest.model.hidden_size, cheapest.model.num_layers) == (4, 1)
    assert (cheapest.train.batch_size, cheapest.data.stride) == (512, 3)
    assert cheapest.train.lr == cfg.train.lr  # not a size: the base value


def test_a_trial_on_a_gpu_this_machine_lacks_is_not_judged_by_its_cpu(series):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here: the estimate runs on it")
    cfg = parse_config(experiment(series, search={"time_budget": 0.01}, resources={"cpu": 1, "gpu": 0.5}))
    assert estimate_epoch(cfg, prepare_sweep_data(cfg)) is None
    check_time_budget(cfg, prepare_sweep_data(cfg))  # nothing to refuse on


def test_data_parallel_workers_split_the_epoch_and_the_cores(series):
    cfg = parse_config(experiment(series, resources={"cpu": 2, "workers": 2}))
    estimate = estimate_epoch(cfg, prepare_sweep_data(cfg))
    assert (estimate.workers, estimate.threads) == (2, 1)
