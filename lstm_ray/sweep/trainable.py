"""The Ray Tune function trainable: rebuild the trial's config, fetch shared data, train, report, checkpoint.

All training logic lives in train/ (`training.py`, `crossval.py`, `transfer.py`); this module only connects it
to Tune's report / checkpoint API.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.data.dataset import PreparedData
from lstm_ray.data.windows import window_setting
from lstm_ray.errors import one_line
from lstm_ray.redaction import redact_values
from lstm_ray.reports.record import trial_size
from lstm_ray.sweep.gpu_packing import GpuPacking
from lstm_ray.sweep.preemption import load_notice_checkpoint, newer_state, run_until_notice
from lstm_ray.train.crossval import FoldTrainers
from lstm_ray.train.distributed import data_parallel
from lstm_ray.train.latency import served_latency_ms
from lstm_ray.train.training import Trainer, carry_hyperparameters, run_epochs, seed_everything, select_device
from lstm_ray.train.transfer import CHECKPOINT_FILE, assemble_model


def train_trial(params: dict[str, Any], *, experiment: ExperimentConfig, data: PreparedData) -> None:
    """One trial: `params` maps dotted config paths to this trial's values (its hyperparameters).

    Raises TrialOutOfMemory when the trial needs more than resources.memory_mb (or its GPU's memory).
    """
    cfg = apply_params(experiment, params)
    with memory_limit(cfg.resources.memory_mb):
        _train(cfg, data)


def train_packed_trial(
    params: dict[str, Any], *, experiment: ExperimentConfig, data: PreparedData, packing: GpuPacking
) -> None:
    """`train_trial` with resources.gpu: auto replaced by the share this trial holds."""
    share = packing.share(apply_params(experiment, params))
    train_trial({**params, "resources.gpu": share}, experiment=experiment, data=data)


def _train(cfg: ExperimentConfig, data: PreparedData) -> None:
    # Use exactly the cores Ray granted: more threads than that oversubscribes the node and slows every trial.
    workers = cfg.resources.parallel_workers  # data-parallel processes, each with its share of the cores
    threads = max(1, int(cfg.resources.cpu / workers))
    torch.set_num_threads(threads)
    seed_everything(cfg.train.seed)
    data = data.for_config(cfg.data)  # the variant prepared for this trial's searched data.scaling etc.
    trainer = build_trainer(cfg, data, select_device(prefer_gpu=cfg.resources.gpu > 0))
    extra = {"config": redact_values(cfg.to_dict()), "preprocessing": data.preprocessing_state()}
    sizes = objective_sizes(cfg, data, trainer)

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state | extra | {"metrics": metrics}, os.path.join(folder, CHECKPOINT_FILE))
            tune.report(metrics | sizes, checkpoint=tune.Checkpoint.from_directory(folder))

    # A retry after a termination notice continues mid-epoch from the state saved then (preemption.py).
    start = newer_state(load_checkpoint_state(tune.get_checkpoint()), load_notice_checkpoint())
    # PBT may hand this trial another trial's checkpoint with perturbed values: the config's values win.
    start = carry_hyperparameters(start, cfg)
    with data_parallel(trainer, start, workers=workers, threads=threads) if workers > 1 else contextlib.nullcontext():
        run_until_notice(trainer, report, start)


def objective_sizes(cfg: ExperimentConfig, data: PreparedData, trainer: Trainer | FoldTrainers) -> dict[str, float]:
    """The objectives of search.objectives that do not change while a trial trains, measured once: MO-ASHA ranks
    every result on all objectives, so they ride along each epoch's report."""
    wanted, sizes = dict(objective_pairs(cfg)), {}
    if "model_parameters" in wanted:
        sizes["model_parameters"] = trial_size(cfg, data)[0]
    if "latency_ms" in wanted:
        first = trainer.trainers[0] if isinstance(trainer, FoldTrainers) else trainer
        sizes["latency_ms"] = served_latency_ms(first.model, first.windows["val"], first.device, cfg.train.batch_size)
    return sizes


class TrialOutOfMemory(MemoryError):
    """The trial needed more memory than it was given; the message says which knob to turn."""


@contextlib.contextmanager
def memory_limit(megabytes: float | None) -> Iterator[None]:
    """Hold the trial's process to `megabytes` of data memory (RLIMIT_DATA) while it trains, so a trial that
    outgrows its share fails alone instead of drawing the node's OOM killer onto other trials. GPU memory
    exhaustion is reported the same way. The limit is lifted afterwards: Tune reuses the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if megabytes:
        # RLIMIT_DATA also counts address space reserved but never touched (thread stacks, allocator arenas:
        # ~1.5 GB in a Ray worker before a trial allocates anything), so a limit of `megabytes` alone would fail
        # every trial. The trial may reserve what it has now plus what its budget leaves beyond its resident memory.
        reserved, resident = _process_memory()
        limit = reserved + max(0, int(megabytes * 2**20) - resident)
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    except (MemoryError, torch.cuda.OutOfMemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        where = f"resources.memory_mb={megabytes:g}" if megabytes else "the memory it could get"
        raise TrialOutOfMemory(
            f"out of memory: the trial needed more than {where}; lower train.batch_size, model.hidden_size or "
            f"data.lookback, or raise resources.memory_mb ({type(err).__name__}: {one_line(err)})"
        ) from None
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _process_memory() -> tuple[int, int]:
    """(data address space, resident memory) of this process in bytes; (0, 0) where /proc is missing."""
    sizes = {}
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmData", "VmRSS"):
                sizes[key] = int(value.split()[0]) * 1024
    return sizes.get("VmData", 0), sizes.get("VmRSS", 0)


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def build_trainer(cfg: ExperimentConfig, data: PreparedData, device: torch.device) -> Trainer | FoldTrainers:
    """A Trainer on the holdout split, or with data.validation: cv one per fold (each its own fresh model)."""
    setting = window_setting(cfg)
    n_inputs = len(data.input_index)
    if cfg.data.task == "classify":
        shape = {"n_classes": data.n_classes}
    else:
        shape = {"n_targets": len(data.target_index), "horizon": cfg.data.horizon, "frame": data.window_frame(cfg.data)}
    common = {"monitor": cfg.search.metric, "device": device, "naive_mae": data.naive_mae}
    if cfg.data.validation != "cv":
        model = assemble_model(cfg, n_inputs, **shape)
        return Trainer(model, data.windows(setting), cfg.train, inverse_targets=data.inverse_targets, **common)
    return FoldTrainers(
        [
            Trainer(
                assemble_model(cfg, n_inputs, **shape),
                windows,
                cfg.train,
                inverse_targets=functools.partial(data.inverse_targets, fold=k),
                **common,
            )
            for k, windows in enumerate(data.folds(setting))
        ]
    )


def refit_on_holdout(cfg: ExperimentConfig, data: PreparedData, epochs: int) -> dict[str, Any]:
    """The model to ship for a cross-validated winner: its folds chose the hyperparameters, but each fold model
    saw its own scaler; this one trains for the same epochs on the holdout training split, whose scaler the test
    split and the logged preprocessing use. Returns its `model` and `model_args`."""
    holdout = apply_params(cfg, {"data.validation": "holdout", "train.max_epochs": max(1, epochs)})
    seed_everything(holdout.train.seed)
    trainer = build_trainer(holdout, data, torch.device("cpu"))
    run_epochs(trainer, lambda metrics, state: None)
    state = trainer.state()
    return {"model": state["model"], "model_args": state["model_args"]}


def checkpoint_config(cfg: ExperimentConfig) -> tune.CheckpointConfig:
    """Which of a trial's per-epoch checkpoints Tune keeps: the best `storage.keep_checkpoints` and the latest.

    Tune snapshots the whole experiment (and uploads every trial's files) each time a trial has reported that
    many checkpoints since the last snapshot, so a small number turns a sweep of many trials quadratic.
    """
    # PBT copies a trial's latest checkpoint, which keeping only the best could have deleted.
    keep = None if cfg.search.scheduler == "pbt" else cfg.storage.keep_checkpoints
    return tune.CheckpointConfig(
        num_to_keep=keep, checkpoint_score_attribute=cfg.search.metric, checkpoint_score_order=cfg.search.mode
    )


def result_loggers(cfg: ExperimentConfig) -> list[tune.Callback]:
    """The per-trial result files Tune writes: progress.csv and result.json (Tune's own analysis reads them), and
    TensorBoard event files only if `storage.tensorboard` asks, since they cost the driver about 3 ms per result.

    Tune adds all three itself unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set (`tuning.tune_settings` sets it).
    """
    return [CSVLoggerCallback(), JsonLoggerCallback(), *([TBXLoggerCallback()] if cfg.storage.tensorboard else [])]


def load_checkpoint_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
