"""How the learning rate and the stopping decision move over training: warm-up, schedules, early stopping.

    lr = LearningRate(optimizer, cfg.train, batches_per_epoch=24, mode="min")
    lr.after_batch()            # after every optimiser step
    lr.after_epoch(epoch, val)  # after validation, with the monitored metric

`train.schedule`: none | step (times lr_decay every step_epochs) | cosine (to zero at max_epochs) | plateau
(times lr_decay after plateau_patience epochs without improvement) | onecycle (up to lr, then down). Every
schedule but onecycle starts with `train.warmup_epochs` of linear warm-up, one increase per batch;
onecycle rises over those epochs instead (30 % of training when 0). All state is plain data for checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR, ReduceLROnPlateau

from lstm_ray.config import TrainConfig

ONECYCLE_DEFAULT_RISE = 0.3  # torch's pct_start


class LearningRate:
    """The optimiser's learning rate: per-batch warm-up / step / cosine / onecycle, per-epoch plateau."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, batches_per_epoch: int, mode: str):
        self.warmup_steps = cfg.warmup_epochs * batches_per_epoch
        self.warmup_epochs = cfg.warmup_epochs
        total = cfg.max_epochs * batches_per_epoch
        self.plateau: ReduceLROnPlateau | None = None
        self.per_batch: LambdaLR | OneCycleLR
        if cfg.schedule == "onecycle":
            rise = self.warmup_steps / total if self.warmup_steps else ONECYCLE_DEFAULT_RISE
            # Momentum is left alone: cycling it would give plain SGD a momentum the config never asked for.
            self.per_batch = OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=total, pct_start=rise, cycle_momentum=False
            )
            return
        self.per_batch = LambdaLR(optimizer, _factor(cfg, batches_per_epoch))
        if cfg.schedule == "plateau":
            self.plateau = ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.lr_decay, patience=cfg.plateau_patience)

    def after_batch(self) -> None:
        # With plateau the batch schedule is the warm-up alone; stepping it later would undo plateau's drops.
        if self.plateau is None or self.per_batch.last_epoch < self.warmup_steps:
            self.per_batch.step()

    def after_epoch(self, epoch: int, value: float) -> None:
        if self.plateau is not None and epoch >= self.warmup_epochs:
            self.plateau.step(value)

    def state(self) -> dict[str, Any]:
        return {
            "per_batch": self.per_batch.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.per_batch.load_state_dict(state["per_batch"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def _factor(cfg: TrainConfig, batches_per_epoch: int):
    """The multiplier of cfg.lr after `step` optimiser steps (warm-up, then step or cosine decay)."""
    warmup = cfg.warmup_epochs * batches_per_epoch
    total = cfg.max_epochs * batches_per_epoch

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        if cfg.schedule == "step":
            return warm * cfg.lr_decay ** (step // (batches_per_epoch * cfg.step_epochs))
        if cfg.schedule == "cosine":
            progress = min(1.0, max(0, step - warmup) / max(1, total - warmup))
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm

    return factor


class EarlyStopping:
    """Ends a trial when the monitored metric has not improved by more than `min_delta` for `patience` epochs.

    A NaN value never counts as an improvement. `patience` 0 never stops.
    """

    def __init__(self, patience: int, min_delta: float, mode: str):
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when training should stop now."""
        if self._improves(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
