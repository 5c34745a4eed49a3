"""The epoch loop, free of Ray: a steppable `Trainer`, and `fit`, which hands each epoch to a `report` callable.

    trainer = Trainer(model, windows, cfg.train, inverse_targets=data.inverse_targets, monitor="val_rmse")
    while not trainer.done:
        metrics = trainer.run_epoch()          # train one epoch, then validate
        save(trainer.state())                  # resume later with trainer.load_state(state)

    fit(model, windows, cfg.train, inverse_targets=..., report=lambda metrics, checkpoint: print(metrics))

A unit test trains a model with it in a second; `sweep/trainable.py` plugs it into Ray Tune. Each Trainer keeps its
own shuffling and dropout random streams, so several (one per cross-validation fold) can run side by side
and each one resumes exactly from its own state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from lstm_ray.config import ExperimentConfig, TrainConfig
from lstm_ray.data.windows import Windows
from lstm_ray.errors import ConfigError
from lstm_ray.train.lr_schedules import EarlyStopping, LearningRate
from lstm_ray.train.metrics import TASK_METRICS, classification_metrics, forecast_metrics

LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # where torch optimisers and lr schedules keep learning rates

Report = Callable[[dict[str, float], dict[str, Any]], None]
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; the trial is failed with this message as its reason."""


class TrainingInterrupted(Exception):
    """`Trainer.interrupt` said stop between two batches; `Trainer.state()` holds the epoch so far (`resume_at`)."""


class OneProcess:
    """A Trainer's data-parallel group when it trains alone: rank 0 of 1, every window its own.

    `train/distributed.py` has the group of several processes with the same methods.
    """

    rank, world = 0, 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module that trains (DistributedDataParallel around `model` in a group)."""
        return model

    def part(self, batch: tuple[Any, ...]) -> tuple[tuple[Any, ...], float, int]:
        """This rank's part of a global batch (x, y, lengths), the weight of its mean loss, its window count."""
        return batch, 1.0, len(batch[0])

    def all_sum(self, values: list[float]) -> list[float]:
        return values

    def broadcast(self, value: float) -> float:
        """Rank 0's `value` on every rank."""
        return value

    def all_gather(self, state: torch.Tensor) -> list[torch.Tensor]:
        return [state]


@dataclass
class FitResult:
    epochs: int  # the last epoch trained
    metrics: dict[str, float]  # that epoch's metrics
    stopped_early: bool = False  # early stopping (train.patience) ended training before max_epochs


def select_device(prefer_gpu: bool = True) -> torch.device:
    """CUDA when a GPU is visible (Ray sets CUDA_VISIBLE_DEVICES for GPU trials), else the CPU."""
    if prefer_gpu and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest RNN kernels for our shapes
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains `model` on windows["train"] one epoch at a time and validates on windows["val"].

    The task (forecast: MSE loss; classify: cross-entropy on logits) is the model's. `monitor` is the
    metric that early stopping and the plateau schedule watch (any key `run_epoch` returns). Raises
    ConfigError for fp16 on a CPU or a model with nothing left to train.
    """

    def __init__(
        self,
        model: nn.Module,
        windows: dict[str, Windows],
        cfg: TrainConfig,
        *,
        inverse_targets: Callable[[np.ndarray], np.ndarray] = lambda y: y,
        naive_mae: np.ndarray | None = None,
        monitor: str = "val_loss",
        device: torch.device | None = None,
    ):
        self.model, self.windows, self.cfg, self.inverse_targets = model, windows, cfg, inverse_targets
        self.naive_mae = naive_mae
        self.device = device or select_device()
        if cfg.precision == "fp16" and self.device.type == "cpu":
            raise ConfigError("train.precision", "fp16 needs a GPU (CPU kernels have no fp16 LSTM); use bf16 or fp32")
        self.task = getattr(model, "task", "forecast")
        self.monitor, mode = monitor, TASK_METRICS[self.task].get(monitor, "min")
        model.to(self.device)
        self.optimizer = make_optimizer(model, cfg)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        self.dropout_rng = torch.Generator().manual_seed(cfg.seed).get_state()
        self.batches = _batches(windows["train"], cfg.batch_size, self.shuffle, self.device)
        self.schedule = LearningRate(self.optimizer, cfg, len(self.batches), mode)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.stopper = EarlyStopping(cfg.patience, cfg.min_delta, mode)
        self.loss_fn = nn.CrossEntropyLoss() if self.task == "classify" else nn.MSELoss()
        self.epoch, self.stopped = 0, False
        self.interrupt: Callable[[], bool] = lambda: False  # asked before each batch (a node's termination notice)
        self.resume_at: dict[str, Any] | None = None  # where an interrupted epoch stopped: batch, loss so far
        self.parallel, self.train_model = OneProcess(), model
        self.rank_rngs: list[torch.Tensor] = []

    def distribute(self, parallel: OneProcess) -> None:
        """Train as one rank of `parallel`: DDP averages the gradients of every rank's part of each global
        batch, validation runs on rank 0, and each rank draws dropout from a stream of its own."""
        self.parallel, self.train_model = parallel, parallel.wrap(self.model)
        if parallel.rank:
            self.dropout_rng = torch.Generator().manual_seed(self.cfg.seed + parallel.rank).get_state()

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.cfg.max_epochs

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch and validate: epoch, train_loss, train_lr, every val_* metric, early_stopped.

        Raises DivergedError when the training loss or the monitored metric is not finite.
        """
        self.epoch += 1
        with torch.random.fork_rng(devices=[]):  # dropout draws from this trainer's own stream
            torch.set_rng_state(self.dropout_rng)
            try:
                train_loss = self.train_epoch()
            except TrainingInterrupted:
                self.epoch -= 1  # the state counts completed epochs; `resume_at` has the rest
                raise
            finally:
                self.dropout_rng = torch.get_rng_state()
        if self.parallel.world > 1:  # every rank's stream goes into rank 0's checkpoint
            self.rank_rngs = self.parallel.all_gather(self.dropout_rng)
        if not math.isfinite(train_loss):
            raise DivergedError(f"train loss became {train_loss} at epoch {self.epoch}; lower train.lr or clip harder")
        metrics: dict[str, float] = {"epoch": self.epoch, "train_loss": train_loss, "train_lr": self._lr()}
        if self.parallel.rank == 0:
            val = self.windows["val"]
            scores = evaluate(self.model, val, self.inverse_targets, self.device, naive_mae=self.naive_mae)
            metrics |= {f"val_{k}": v for k, v in scores.items()}
        monitored = self.parallel.broadcast(metrics.get(self.monitor, math.nan))
        if not math.isfinite(monitored):  # a searcher must never be told NaN is a score
            raise DivergedError(f"{self.monitor} became {monitored} at epoch {self.epoch}; lower train.lr")
        self.schedule.after_epoch(self.epoch, monitored)
        self.stopped = self.stopper.update(monitored)
        metrics["early_stopped"] = float(self.stopped)
        return metrics

    def state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly; loadable with torch.load(weights_only=True).

        The tensors are the live ones: save or copy the dict before the next `run_epoch`.
        """
        return {
            "model": self.model.state_dict(),
            "model_args": getattr(self.model, "model_args", {}),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": self.stopper.state(),
            "epoch": self.epoch,
            "resume_at": self.resume_at,
            "rng": {"shuffle": self.shuffle.get_state(), "torch": self.dropout_rng}
            | ({"ranks": self.rank_rngs} if self.rank_rngs else {}),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a `state()` dict: the next `run_epoch` trains epoch state["epoch"] + 1."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.stopper.load_state(state["early_stopping"])
        self.shuffle.set_state(state["rng"]["shuffle"])
        ranks = state["rng"].get("ranks") or [state["rng"]["torch"]]
        if self.parallel.rank < len(ranks):  # a rank the checkpoint's run did not have keeps its own fresh stream
            self.dropout_rng = ranks[self.parallel.rank]
        self.epoch = int(state["epoch"])
        self.resume_at = state.get("resume_at")

    def train_epoch(self) -> float:
        """One pass over this rank's share of the training batches, without validation; the mean loss."""
        self.train_model.train()
        start = self.resume_at or {"batch": 0, "loss_sum": 0.0, "count": 0, "shuffle": self.shuffle.get_state()}
        self.shuffle.set_state(start["shuffle"])  # an epoch resumed mid-way replays its batch order
        total, count = start["loss_sum"], start["count"]
        batches = iter(self.batches)  # this draws a seed from the global stream, which is dropout's here
        if self.resume_at:  # dropout's stream as it was after that draw and the batches already trained
            torch.set_rng_state(self.dropout_rng)
        for index, batch in enumerate(batches):
            if index < start["batch"]:
                continue
            if self.interrupt():
                self.resume_at = start | {"batch": index, "loss_sum": total, "count": count}
                raise TrainingInterrupted(f"stopped before batch {index + 1} of epoch {self.epoch}")
            part, weight, windows = self.parallel.part(batch)
            x, y, lengths = (t.to(self.device, non_blocking=True) if t is not None else None for t in part)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, PRECISIONS[self.cfg.precision], self.cfg.precision != "fp32"):
                output = self.train_model(x, lengths, tbptt=self.cfg.tbptt)
            loss = self.loss_fn(output.float(), y)
            self.scaler.scale(loss * weight + self._penalty()).backward()
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.after_batch()
            total += loss.item() * windows
            count += windows
        self.resume_at = None
        total, count = self.parallel.all_sum([total, count])
        return total / count

    def _penalty(self) -> torch.Tensor | float:
        """train.l1 * sum |w| + train.l2 * sum w^2 over the trained weight matrices (biases are exempt)."""
        if not (self.cfg.l1 or self.cfg.l2):
            return 0.0
        weights = [p for p in self.model.parameters() if p.requires_grad and p.dim() > 1]
        return sum(self.cfg.l1 * w.abs().sum() + self.cfg.l2 * w.square().sum() for w in weights)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def fit(
    model: nn.Module,
    windows: dict[str, Windows],
    cfg: TrainConfig,
    *,
    inverse_targets: Callable[[np.ndarray], np.ndarray],
    report: Report,
    checkpoint: dict[str, Any] | None = None,
    device: torch.device | None = None,
    monitor: str = "val_loss",
) -> FitResult:
    """Train until max_epochs or early stopping, calling `report(metrics, checkpoint)` after every epoch.

    `metrics` is `Trainer.run_epoch`'s; `checkpoint` is `Trainer.state()`, and passing it back as
    `checkpoint` resumes the same curve. Raises DivergedError when the loss is not finite.
    """
    trainer = Trainer(model, windows, cfg, inverse_targets=inverse_targets, monitor=monitor, device=device)
    return run_epochs(trainer, report, checkpoint)


def run_epochs(trainer: Any, report: Report, checkpoint: dict[str, Any] | None = None) -> FitResult:
    """Step `trainer` (a Trainer, or anything with its interface) to the end, reporting every epoch."""
    if checkpoint is not None:
        trainer.load_state(checkpoint)
    metrics: dict[str, float] = {}
    while not trainer.done:
        metrics = trainer.run_epoch()
        report(metrics, trainer.state())
    return FitResult(epochs=trainer.epoch, metrics=metrics, stopped_early=trainer.stopped)


@torch.no_grad()
def predict(model: nn.Module, windows: Windows, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for every window, as float32 on the CPU (forecasts, or class logits)."""
    model.eval()
    x = torch.as_tensor(windows.x)
    lengths = None if windows.lengths is None else torch.as_tensor(windows.lengths)
    outputs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size].to(device)
        chunk_lengths = None if lengths is None else lengths[start : start + batch_size]
        outputs.append(model(chunk, chunk_lengths).float().cpu())
    return torch.cat(outputs).numpy()


def evaluate(
    model: nn.Module,
    windows: Windows,
    inverse_targets: Callable[[np.ndarray], np.ndarray],
    device: torch.device,
    batch_size: int = 1024,
    naive_mae: np.ndarray | None = None,
) -> dict[str, float]:
    """Score the model on every window, by its task.

    forecast: loss (MSE on scaled targets) and rmse, mae, mape, smape on the original scale (`inverse_targets`),
    and mase with `naive_mae`; targets the source did not have (`windows.mask`) are not scored.
    classify: loss (cross-entropy), accuracy, f1 (macro) and auc (binary, or macro one-vs-rest).
    """
    outputs = predict(model, windows, device, batch_size)
    if getattr(model, "task", "forecast") == "classify":
        return classification_metrics(outputs, windows.y)
    squares = (outputs - windows.y) ** 2
    loss = float(np.mean(squares if windows.mask is None else squares[windows.mask]))
    actual = inverse_targets(windows.y)
    return {"loss": loss} | forecast_metrics(inverse_targets(outputs), actual, windows.mask, naive_mae)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser over the parameters that train (frozen ones are left out)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ConfigError("model.freeze", "freezes every part of the model; leave at least the head to train")
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = cfg.momentum
    if cfg.optimizer == "sgd":
        kwargs["nesterov"] = cfg.nesterov
    return OPTIMIZERS[cfg.optimizer](parameters, **kwargs)


def _batches(windows: Windows, batch_size: int, shuffle: torch.Generator, device: torch.device) -> DataLoader:
    """Shuffled batches of (x, y, lengths or None); pinned in host memory when they go to a GPU."""
    # Object-store arrays are read-only; torch.tensor copies them into memory the model may own.
    tensors = [torch.tensor(windows.x), torch.tensor(windows.y)]
    if windows.lengths is not None:
        tensors.append(torch.tensor(windows.lengths))
    sampler = BatchSampler(RandomSampler(range(len(windows)), generator=shuffle), batch_size, drop_last=False)
    return DataLoader(
        _IndexedTensors(*tensors),
        sampler=sampler,
        batch_size=None,  # the sampler yields whole batches of indices: one gather per batch
        pin_memory=device.type == "cuda",
    )


class _IndexedTensors(TensorDataset):
    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor | None, ...]:
        items = tuple(t[index] for t in self.tensors)
        return items if len(items) == 3 else (*items, None)


def carry_hyperparameters(state: dict[str, Any] | None, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """A restored checkpoint made to follow the trial's current optimiser values.

    A checkpoint stores the optimiser's learning rate, weight decay and momentum. After PBT copies it to a
    trial with perturbed values, those stored values would silently win: this rescales every learning rate
    in the optimiser and its schedule by new lr / saved lr, and sets weight decay and momentum. A checkpoint
    of the trial's own config (a plain restore) is returned unchanged in effect.
    """
    if state is None or "optimizer" not in state or "config" not in state:
        return state
    ratio = cfg.train.lr / state["config"]["train"]["lr"]
    for group in state["optimizer"]["param_groups"]:
        for key in LR_KEYS:
            if key in group:
                group[key] *= ratio
        for key in ("weight_decay", "momentum"):
            if key in group:
                group[key] = getattr(cfg.train, key)
    per_batch = (state.get("schedule") or {}).get("per_batch") or {}
    for key in ("base_lrs", "_last_lr"):
        if key in per_batch:
            per_batch[key] = [lr * ratio for lr in per_batch[key]]
    return state
