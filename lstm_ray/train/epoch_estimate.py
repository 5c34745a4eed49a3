"""How long one epoch of a sweep's cheapest trial takes, measured here before Ray starts, so that a
`search.time_budget` too short for a single epoch is refused by `validate` and `tune` instead of after the sweep.

    estimate = estimate_epoch(cfg, data)      # .seconds; None when this machine cannot stand in for the trials
    check_time_budget(cfg, data)              # ConfigError (search.time_budget) when the budget < half an epoch

The estimate trains a few batches of the real model and Trainer (torch threads = resources.cpu, on the device a
trial would use here) and predicts a slice of the validation windows, then scales both to the epoch's windows.
It builds the cheapest trial the search space allows (smallest model.hidden_size, model.num_layers,
data.lookback and model.embedding_dim; largest train.batch_size and data.stride), so a refusal holds for every
trial. Nodes may be faster than this machine: only a budget below LOWER_BOUND of the estimate is refused. When
trials ask for a GPU and none is visible here, a CPU's time says nothing about them and nothing is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.data.prepared import PreparedData
from lstm_ray.data.windows import Windows, window_setting
from lstm_ray.errors import ConfigError
from lstm_ray.train.precision_probe import precision_problem
from lstm_ray.train.training import Trainer, evaluate, select_device
from lstm_ray.train.transfer import assemble_model

__all__ = ["LOWER_BOUND", "EpochEstimate", "check_time_budget", "estimate_epoch"]

LOWER_BOUND = 0.5  # refuse a budget below this share of the measured epoch (trial nodes may be 2x faster)
TIMED_BATCHES = 8  # training batches per timed call
TIMED_S = 0.3  # time spent timing training, and again validation (at most REPEATS calls each)
REPEATS = 20
VAL_SAMPLE = 2048  # validation windows predicted for the estimate
CHEAPER_LOW = ("model.hidden_size", "model.num_layers", "data.lookback", "model.embedding_dim")
CHEAPER_HIGH = ("train.batch_size", "data.stride")


@dataclasses.dataclass
class EpochEstimate:
    seconds: float  # one epoch: every fold's training batches and validation
    train_batches: int  # in one epoch, over all folds
    val_windows: int  # predicted in one epoch, over all folds
    threads: int  # torch threads it was measured with (per data-parallel worker)
    device: str  # "cpu" or "cuda"
    workers: int = 1  # data-parallel processes of a trial: the measured time is divided among them


def check_time_budget(cfg: ExperimentConfig, data: PreparedData) -> None:
    """Raise ConfigError (search.time_budget) when the budget is below LOWER_BOUND of one epoch measured here.
    Nothing is measured without a budget."""
    budget = cfg.search.time_budget_s
    if budget is None:
        return
    estimate = estimate_epoch(cfg, data)
    if estimate is None or budget >= LOWER_BOUND * estimate.seconds:
        return
    raise ConfigError(
        "search.time_budget",
        f"{cfg.search.time_budget!r} ({budget:g} s) cannot finish one epoch of any trial: the cheapest trial's "
        f"epoch ({estimate.train_batches} training batches, {estimate.val_windows} validation windows) takes "
        f"{estimate.seconds:.3g} s here ({estimate.device}, {estimate.threads} thread(s){_split(estimate)}), "
        "so at least "
        f"{LOWER_BOUND * estimate.seconds:.3g} s on nodes twice as fast; raise search.time_budget or make an epoch "
        "cheaper (a larger data.stride or train.batch_size, a smaller model.hidden_size or data.lookback)",
    )


def estimate_epoch(cfg: ExperimentConfig, data: PreparedData) -> EpochEstimate | None:
    """One epoch of the sweep's cheapest trial, timed on this machine; None when trials ask for a GPU and none is
    here, or the cheapest combination of searched values is no valid trial (nothing to bound then).
    Leaves torch's thread count and random state as they were."""
    trial = cheapest_trial(cfg)
    device = select_device(prefer_gpu=cfg.resources.gpu != 0)  # != 0: a share, or "auto"
    if trial is None or (cfg.resources.gpu != 0 and device.type == "cpu"):
        return None
    workers = cfg.resources.parallel_workers
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg.resources.cpu / workers)))
    try:
        with torch.random.fork_rng(devices=[]):
            alone = _measure(trial, data.for_config(trial.data), device)
    finally:
        torch.set_num_threads(threads)
    # Workers that split each batch can at best divide the epoch among them: a lower bound stays one.
    return dataclasses.replace(alone, seconds=alone.seconds / workers, workers=workers)


def _split(estimate: EpochEstimate) -> str:
    return f" each, split over {estimate.workers} data-parallel workers" if estimate.workers > 1 else ""


def cheapest_trial(cfg: ExperimentConfig) -> ExperimentConfig | None:
    """`cfg` with each searched size at its cheapest end and no model.init_from (its weights cost nothing to
    time); None when that combination is no valid trial."""
    space = cfg.parsed_space()
    params: dict[str, Any] = {"model.init_from": None}
    for key, pick in [*((k, min) for k in CHEAPER_LOW), *((k, max) for k in CHEAPER_HIGH)]:
        if key in space:
            params[key] = pick(space[key].representative_values())
    try:
        return apply_params(cfg, params)
    except ConfigError:
        return None


def _measure(cfg: ExperimentConfig, data: PreparedData, device: torch.device) -> EpochEstimate:
    setting = window_setting(cfg)
    folds = data.folds(setting) if cfg.data.validation == "cv" else [data.windows(setting)]
    train, val = folds[0]["train"], folds[0]["val"]
    batch = cfg.train.batch_size
    sample = {"train": _head(train, TIMED_BATCHES * batch), "val": _head(val, VAL_SAMPLE)}
    trainer = _trainer(cfg, data, sample, device)
    # The training half of Trainer.run_epoch: timed apart from validation, whose share of an epoch differs.
    per_batch = _typical_s(trainer.train_epoch) / math.ceil(len(sample["train"]) / batch)
    validate = functools.partial(evaluate, trainer.model, sample["val"], data.inverse_targets, device)
    per_val_window = _typical_s(validate) / len(sample["val"])
    train_batches = sum(math.ceil(len(f["train"]) / batch) for f in folds)
    val_windows = sum(len(f["val"]) for f in folds)
    seconds = per_batch * train_batches + per_val_window * val_windows
    return EpochEstimate(seconds, train_batches, val_windows, torch.get_num_threads(), device.type)


def _trainer(cfg: ExperimentConfig, data: PreparedData, sample: dict[str, Windows], device: torch.device) -> Trainer:
    """A Trainer as a trial builds it (`sweep/trainable.build_trainer`), on `sample`; in fp32 where this device
    cannot train the configured precision (the trials' nodes can: preflight checks that)."""
    if cfg.data.task == "classify":
        shape: dict[str, Any] = {"n_classes": data.n_classes}
    else:
        shape = {"n_targets": len(data.target_index), "horizon": cfg.data.horizon, "frame": data.window_frame(cfg.data)}
    model = assemble_model(cfg, len(data.input_index), **shape)
    precision = cfg.train.precision
    if (precision == "fp16" and device.type == "cpu") or precision_problem(precision, cfg.model.cell, device.type):
        precision = "fp32"
    # Room in the learning-rate schedule (onecycle counts its steps) for every timed call.
    train = dataclasses.replace(cfg.train, max_epochs=max(REPEATS + 1, cfg.train.max_epochs), precision=precision)
    common = {"monitor": cfg.search.metric, "device": device, "naive_mae": data.naive_mae}
    return Trainer(model, sample, train, inverse_targets=data.inverse_targets, **common)


def _head(windows: Windows, n: int) -> Windows:
    """The first `n` windows."""
    fields = {f.name: getattr(windows, f.name) for f in dataclasses.fields(windows)}
    return Windows(**{name: None if value is None else value[:n] for name, value in fields.items()})


def _typical_s(work: Callable[[], Any]) -> float:
    """The median of repeated calls of `work`, after one to warm up (allocations, oneDNN primitives): repeated
    until they took TIMED_S in all, at least three and at most REPEATS times. The median, not the quickest: a
    trial shares its node with others too, and its epochs take the typical time, not the luckiest."""
    work()
    times: list[float] = []
    while len(times) < 3 or (sum(times) < TIMED_S and len(times) < REPEATS):
        start = time.perf_counter()
        work()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
