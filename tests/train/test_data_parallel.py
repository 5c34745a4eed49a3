"""Data-parallel trials without Ray (train/distributed.py): two real gloo ranks on this machine's CPUs, and the
resources.workers rules of the config."""

from __future__ import annotations

import copy
import os
import signal

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lstm_ray.config import ModelConfig, TrainConfig, parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.train.distributed import DataParallelRank, data_parallel, shard_bounds
from lstm_ray.train.models import build_model
from lstm_ray.train.training import Trainer, run_epochs, seed_everything

CPU = torch.device("cpu")
CHECKED = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# Two ranks and one process take the same steps; they differ only in float32 summation order (each rank's mean
# loss and gradient over its half, then the average, against one mean over the whole batch): about 1e-7 of a
# value per step, 3e-6 after three epochs of Adam here. Leaving the ranks' parts of a partial batch unweighted
# (the mean of their means) moved the losses by 2e-2.
SAME_CURVE = 1e-4


@pytest.fixture(autouse=True)
def one_thread():
    """Rank 0 trains with one thread as each child does: on this 2-core machine more would starve the child."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def children() -> list[int]:
    """PIDs of this process's child processes that are data-parallel ranks (Linux /proc; a session's Ray, started
    by this process too, does not count)."""
    found = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as listed:
            found += [int(pid) for pid in listed.read().split()]
    return [pid for pid in found if b"lstm_ray.train.distributed" in _command_line(pid)]


def _command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:  # ended meanwhile
        return b""


def make_trainer(windows, cfg: TrainConfig, model_cfg: ModelConfig, n_inputs: int = 1, n_classes: int = 0):
    seed_everything(cfg.seed)
    model = build_model(model_cfg, n_inputs, 1, 1, n_classes=n_classes)
    return Trainer(model, windows, cfg, device=CPU, monitor="val_loss")


def train(trainer, workers: int, checkpoint=None, report=None) -> list[tuple[dict, dict]]:
    reports: list[tuple[dict, dict]] = []

    def keep(metrics, state):
        reports.append((metrics, copy.deepcopy(state)))  # the state is live
        if report:
            report(metrics, state)

    if workers == 1:
        run_epochs(trainer, keep, checkpoint)
    else:
        with data_parallel(trainer, checkpoint, workers=workers):
            run_epochs(trainer, keep, checkpoint)
    return reports


@given(size=st.integers(1, 5000), world=st.integers(1, 64))
@CHECKED
def test_each_rank_takes_a_contiguous_near_equal_part_and_the_parts_weigh_the_whole_batch(size, world):
    batch = (torch.arange(size), torch.arange(size) * 2, None)
    parts = [DataParallelRank(rank, world, CPU).part(batch) for rank in range(world)]
    bounds = [shard_bounds(size, rank, world) for rank in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))  # contiguous, no overlap
    counts = [count for _, _, count in parts]
    assert max(counts) - min(counts) <= 1 and sum(counts) == size
    # DDP averages the ranks' gradients: weights summing to `world` make that the mean over the whole batch.
    assert sum(weight for _, weight, _ in parts) == pytest.approx(world)
    for (x, y, lengths), weight, count in parts:
        assert len(x) == max(count, 1) and lengths is None and (y == 2 * x).all()
        assert weight == pytest.approx(world * count / size)


@pytest.mark.parametrize(
    "task",
    [
        "forecast",  # 411 training windows in batches of 10: the last batch has 1, so rank 1's part is empty
        "classify",  # 109 padded sequences in batches of 20: the last has 9, split 5 / 4 and weighted so; lengths too
    ],
)
def test_two_workers_follow_the_loss_curve_of_one_process_with_the_same_global_batch(task, sine_windows, class_windows):
    if task == "forecast":
        windows, cfg, shape = sine_windows(), TrainConfig(max_epochs=3, batch_size=10, lr=0.01), {}
    else:
        windows, cfg = class_windows(per_class=61), TrainConfig(max_epochs=4, batch_size=20, lr=0.02)
        shape = {"n_inputs": 2, "n_classes": 3}
    assert len(windows["train"]) % cfg.batch_size in (1, 9)
    model_cfg = ModelConfig(hidden_size=8)
    alone = train(make_trainer(windows, cfg, model_cfg, **shape), workers=1)
    paired = train(make_trainer(windows, cfg, model_cfg, **shape), workers=2)
    assert [m["epoch"] for m, _ in paired] == [m["epoch"] for m, _ in alone] == list(range(1, cfg.max_epochs + 1))
    for (one, _), (two, _) in zip(alone, paired, strict=True):
        for key in ("train_loss", "val_loss"):
            assert two[key] == pytest.approx(one[key], rel=SAME_CURVE), (key, one["epoch"])
    assert alone[-1][0]["train_loss"] < alone[0][0]["train_loss"]  # it learned: the curves say something
    assert children() == []


def test_a_two_worker_run_restored_from_its_checkpoint_continues_the_same_curve(sine_windows):
    # Dropout draws from each rank's own stream; momentum, a schedule and early stopping carry state too.
    model_cfg = ModelConfig(hidden_size=8, dropout=0.2, input_dropout=0.1)
    cfg = TrainConfig(
        max_epochs=4, batch_size=32, optimizer="sgd", momentum=0.9, lr=0.05, schedule="cosine", patience=3
    )
    straight = train(make_trainer(sine_windows(), cfg, model_cfg), workers=2)
    checkpoint = straight[1][1]
    assert checkpoint["epoch"] == 2 and len(checkpoint["rng"]["ranks"]) == 2
    resumed = train(make_trainer(sine_windows(), cfg, model_cfg), workers=2, checkpoint=copy.deepcopy(checkpoint))
    assert [m["epoch"] for m, _ in resumed] == [3, 4]
    assert [m for m, _ in resumed] == [m for m, _ in straight[2:]]


def test_no_rank_outlives_a_trial_that_tune_stops(sine_windows):
    def stop(metrics, state):  # what Tune does to a trial's thread that ASHA stops: sys.exit(0) in report
        assert len(children()) == 1
        raise SystemExit(0)

    with pytest.raises(SystemExit):
        train(
            make_trainer(sine_windows(), TrainConfig(max_epochs=3, batch_size=32), ModelConfig(hidden_size=8)),
            2,
            report=stop,
        )
    assert children() == []


def test_a_rank_that_dies_fails_the_trial_naming_it(sine_windows):
    def kill_rank_1(metrics, state):
        (rank_1,) = children()
        os.kill(rank_1, signal.SIGKILL)
        os.waitid(os.P_PID, rank_1, os.WEXITED | os.WNOWAIT)  # dead before rank 0 trains on

    trainer = make_trainer(sine_windows(), TrainConfig(max_epochs=3, batch_size=32), ModelConfig(hidden_size=8))
    with pytest.raises(RuntimeError, match="data-parallel rank 1 of 2 exited with code -9"):
        train(trainer, workers=2, report=kill_rank_1)
    assert children() == []


def test_a_global_batch_the_workers_cannot_split_evenly_is_refused_before_any_rank_starts(sine_windows):
    trainer = make_trainer(sine_windows(), TrainConfig(max_epochs=1, batch_size=25), ModelConfig(hidden_size=8))
    with pytest.raises(ConfigError, match="train.batch_size: 25 is the global batch and must be a multiple of 2"):
        train(trainer, workers=2)
    assert children() == []


# --- resources.workers in the config --------------------------------------------------------------------------


def config_with(tiny_raw, resources: dict, batch_size: int = 64, space: dict | None = None):
    raw = copy.deepcopy(tiny_raw)
    raw["resources"] = resources
    raw["train"]["batch_size"] = batch_size
    raw["search"]["space"] = space or {}
    return parse_config(raw)


@given(workers=st.integers(2, 16), batch_size=st.integers(1, 4096), gpus=st.booleans())
@CHECKED
def test_a_batch_size_that_is_no_multiple_of_the_workers_is_an_error(tiny_raw, workers, batch_size, gpus):
    assume(batch_size % workers)
    resources = {"gpu": workers} if gpus else {"cpu": workers, "workers": workers}
    with pytest.raises(ConfigError, match=f"multiple of {workers}") as err:
        config_with(tiny_raw, resources, batch_size)
    assert err.value.key == "train.batch_size"
    fixed = (batch_size // workers + 1) * workers
    assert config_with(tiny_raw, resources, fixed).resources.parallel_workers == workers


@given(workers=st.integers(2, 8), good=st.integers(1, 64), bad=st.integers(1, 4096))
@CHECKED
def test_a_searched_batch_size_must_be_a_multiple_of_the_workers_in_every_choice(tiny_raw, workers, good, bad):
    assume(bad % workers)
    space = {"train.batch_size": {"choice": [good * workers, bad]}}
    with pytest.raises(ConfigError) as err:
        config_with(tiny_raw, {"cpu": workers, "workers": workers}, space=space)
    assert err.value.key == "search.space.train.batch_size" and f"multiple of {workers}" in str(err.value)
    space = {"train.batch_size": {"randint": [good * workers, good * workers + 9]}}
    with pytest.raises(ConfigError, match="quniform with q a multiple"):
        config_with(tiny_raw, {"cpu": workers, "workers": workers}, space=space)


@given(gpu=st.integers(1, 16), workers=st.integers(1, 16))
@CHECKED
def test_workers_must_divide_the_trials_gpus(tiny_raw, gpu, workers):
    resources = {"gpu": gpu, "workers": workers}
    batch = 64 * workers
    if gpu % workers == 0:
        assert config_with(tiny_raw, resources, batch).resources.parallel_workers == workers
        return
    with pytest.raises(ConfigError, match=f"resources.gpu {gpu} must be a multiple of resources.workers {workers}"):
        config_with(tiny_raw, resources, batch)


@given(gpu=st.floats(0.01, 0.99), workers=st.integers(2, 8))
@CHECKED
def test_workers_cannot_share_a_gpu_fraction(tiny_raw, gpu, workers):
    with pytest.raises(ConfigError, match="cannot share a GPU fraction") as err:
        config_with(tiny_raw, {"gpu": gpu, "workers": workers}, 64 * workers)
    assert err.value.key == "resources.workers"


@given(cpu=st.integers(1, 8), workers=st.integers(2, 16))
@CHECKED
def test_each_cpu_worker_needs_a_core(tiny_raw, cpu, workers):
    assume(cpu < workers)
    with pytest.raises(ConfigError, match=f"{workers} workers need at least {workers} CPUs") as err:
        config_with(tiny_raw, {"cpu": cpu, "workers": workers}, 64 * workers)
    assert err.value.key == "resources.workers"


@given(whole=st.integers(1, 15), fraction=st.floats(0.01, 0.99))
@CHECKED
def test_more_than_one_gpu_must_be_a_whole_number(tiny_raw, whole, fraction):
    with pytest.raises(ConfigError, match="above 1 it must be a whole number") as err:
        config_with(tiny_raw, {"gpu": whole + fraction})
    assert err.value.key == "resources.gpu"


@given(gpu=st.integers(0, 16))
@CHECKED
def test_a_trial_has_one_worker_per_gpu_unless_told(tiny_raw, gpu):
    cfg = config_with(tiny_raw, {"gpu": gpu}, 64 * max(gpu, 1) * 7)
    assert cfg.resources.parallel_workers == max(gpu, 1)
    assert config_with(tiny_raw, {"gpu": gpu, "workers": 1}).resources.parallel_workers == 1
