"""The epoch loop, free of Ray: it trains, measures and hands each epoch to a `report` callable.

    result = fit(model, windows, cfg.train, inverse_targets=data.inverse_targets,
                 report=lambda metrics, checkpoint: print(metrics))

A unit test trains a model with it in a second; `trainable.py` plugs it into Ray Tune.
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

from lstm_ray.config import TrainConfig
from lstm_ray.data.windows import Windows

Report = Callable[[dict[str, float], dict[str, Any]], None]
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; the trial is failed with this message as its reason."""


@dataclass
class FitResult:
    epochs: int  # the last epoch trained
    metrics: dict[str, float]  # that epoch's metrics


def select_device(prefer_gpu: bool = True) -> torch.device:
    """CUDA when a GPU is visible (Ray sets CUDA_VISIBLE_DEVICES for GPU trials), else the CPU."""
    if prefer_gpu and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed window shapes: let cuDNN pick its fastest RNN kernels
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(
    model: nn.Module,
    windows: dict[str, Windows],
    cfg: TrainConfig,
    *,
    inverse_targets: Callable[[np.ndarray], np.ndarray],
    report: Report,
    checkpoint: dict[str, Any] | None = None,
    device: torch.device | None = None,
) -> FitResult:
    """Train for `cfg.max_epochs`, calling `report(metrics, checkpoint)` after every epoch.

    `metrics` holds train_loss and the validation metrics (val_loss on the scaled targets, val_rmse and
    val_mae on the original scale); `checkpoint` holds the model, optimiser and RNG state, and passing it
    back as `checkpoint` resumes the same curve. Raises DivergedError when the loss is not finite.
    """
    device = device or select_device()
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    start = 1
    if checkpoint is not None:
        start = restore(model, optimizer, shuffle, checkpoint) + 1
    x, y = _to_tensors(windows["train"], device)
    loss_fn = nn.MSELoss()
    metrics: dict[str, float] = {}
    epoch = start - 1
    for epoch in range(start, cfg.max_epochs + 1):
        train_loss = train_epoch(model, optimizer, loss_fn, x, y, cfg, shuffle)
        if not math.isfinite(train_loss):
            raise DivergedError(f"train loss became {train_loss} at epoch {epoch}; lower train.lr or clip harder")
        metrics = {"epoch": epoch, "train_loss": train_loss}
        metrics |= {f"val_{k}": v for k, v in evaluate(model, windows["val"], inverse_targets, device).items()}
        report(metrics, checkpoint_state(model, optimizer, shuffle, epoch))
    return FitResult(epochs=epoch, metrics=metrics)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    shuffle: torch.Generator,
) -> float:
    model.train()
    order = torch.randperm(len(x), generator=shuffle).to(x.device)
    total, count = 0.0, 0
    for batch in order.split(cfg.batch_size):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total += loss.item() * len(batch)
        count += len(batch)
    return total / count


@torch.no_grad()
def evaluate(
    model: nn.Module,
    windows: Windows,
    inverse_targets: Callable[[np.ndarray], np.ndarray],
    device: torch.device,
    batch_size: int = 1024,
) -> dict[str, float]:
    """loss (MSE on scaled targets), rmse and mae (on the original scale) over every window."""
    model.eval()
    x, _ = _to_tensors(windows, device)
    predicted = torch.cat([model(chunk) for chunk in x.split(batch_size)]).float().cpu().numpy()
    loss = float(np.mean((predicted - windows.y) ** 2))
    error = inverse_targets(predicted) - inverse_targets(windows.y)
    return {"loss": loss, "rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    return OPTIMIZERS[cfg.optimizer](model.parameters(), **kwargs)


def checkpoint_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, epoch: int
) -> dict[str, Any]:
    """Everything needed to continue training exactly; loadable with torch.load(weights_only=True)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()},
    }


def restore(model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, state: dict[str, Any]) -> int:
    """Load a `checkpoint_state` dict; returns the epoch it was taken after."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    shuffle.set_state(state["rng"]["shuffle"])
    torch.set_rng_state(state["rng"]["torch"])
    return int(state["epoch"])


def _to_tensors(windows: Windows, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Object-store arrays are read-only; torch.tensor copies them into memory the model may own.
    return torch.tensor(windows.x, device=device), torch.tensor(windows.y, device=device)
