"""Learning-rate schedules with warm-up, and early stopping, stepped by hand."""

from __future__ import annotations

import pytest
import torch

from lstm_ray.config import TrainConfig
from lstm_ray.train.lr_schedules import EarlyStopping, LearningRate

BATCHES = 4  # per epoch


def lr_by_epoch(cfg: TrainConfig, values=None) -> list[float]:
    """The learning rate of the first batch of each epoch."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    schedule = LearningRate(optimizer, cfg, BATCHES, mode="min")
    seen = []
    for epoch in range(1, cfg.max_epochs + 1):
        seen.append(optimizer.param_groups[0]["lr"])
        for _ in range(BATCHES):
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(epoch, values[epoch - 1] if values else 1.0)
    return seen


def test_none_keeps_the_rate():
    assert lr_by_epoch(TrainConfig(lr=0.1, max_epochs=3)) == [0.1] * 3


def test_step_multiplies_by_lr_decay_every_step_epochs():
    lrs = lr_by_epoch(TrainConfig(lr=0.1, max_epochs=6, schedule="step", step_epochs=2, lr_decay=0.5))
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_falls_smoothly_towards_zero():
    lrs = lr_by_epoch(TrainConfig(lr=0.1, max_epochs=10, schedule="cosine"))
    assert lrs[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True)) and lrs[-1] < 0.01


def test_plateau_drops_after_patience_epochs_without_improvement():
    cfg = TrainConfig(lr=0.1, max_epochs=6, schedule="plateau", plateau_patience=1, lr_decay=0.5)
    lrs = lr_by_epoch(cfg, values=[1.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert lrs[:4] == pytest.approx([0.1] * 4) and lrs[4] == pytest.approx(0.05)  # 1 bad epoch tolerated


def test_warmup_rises_linearly_to_the_rate_then_the_schedule_takes_over():
    cfg = TrainConfig(lr=0.1, max_epochs=4, schedule="step", step_epochs=3, lr_decay=0.5, warmup_epochs=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    schedule = LearningRate(optimizer, cfg, BATCHES, mode="min")
    rates = []
    for _ in range(cfg.max_epochs * BATCHES):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_batch()
    assert rates[:8] == pytest.approx([0.1 * (i + 1) / 8 for i in range(8)])
    assert rates[8:12] == pytest.approx([0.1] * 4) and rates[12] == pytest.approx(0.05)


def test_warmup_then_plateau_is_not_undone_by_the_warmup():
    cfg = TrainConfig(lr=0.1, max_epochs=5, schedule="plateau", plateau_patience=0, lr_decay=0.5, warmup_epochs=1)
    lrs = lr_by_epoch(cfg, values=[1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs[1] == pytest.approx(0.1) and lrs[2] == pytest.approx(0.05) and lrs[3] == pytest.approx(0.025)


def test_onecycle_rises_to_the_rate_over_the_warmup_then_anneals():
    lrs = lr_by_epoch(TrainConfig(lr=0.1, max_epochs=8, schedule="onecycle", warmup_epochs=2))
    assert lrs[0] < 0.01 and lrs[2] == pytest.approx(0.1, rel=0.05) and lrs[-1] < lrs[3]


def test_early_stopping_counts_epochs_without_a_min_delta_improvement():
    stopper = EarlyStopping(patience=2, min_delta=0.1, mode="min")
    assert [stopper.update(v) for v in [1.0, 0.95, 0.85, 0.8, 0.79]] == [False, False, False, False, True]
    rising = EarlyStopping(patience=1, min_delta=0.0, mode="max")
    assert [rising.update(v) for v in [0.5, 0.6, float("nan")]] == [False, False, True]
