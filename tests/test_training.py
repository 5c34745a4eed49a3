"""The epoch loop alone: no Ray, a model trained in about a second."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig, TrainConfig
from lstm_ray.data.windows import Windows, WindowSetting, make_windows
from lstm_ray.models import build_model
from lstm_ray.training import DivergedError, fit, seed_everything


def sine_windows() -> dict[str, Windows]:
    values = np.sin(np.arange(600) / 6.0).astype(np.float32).reshape(-1, 1)
    setting = WindowSetting(lookback=12, horizon=1, stride=1)
    return {
        "train": make_windows(values, [0], [0], (0, 420), setting),
        "val": make_windows(values, [0], [0], (420, 510), setting),
        "test": make_windows(values, [0], [0], (510, 600), setting),
    }


def train(cfg: TrainConfig, windows=None, checkpoint=None, seed=0):
    seed_everything(seed)
    model = build_model(ModelConfig(hidden_size=16), 1, 1, 1)
    reports: list[tuple[dict, dict]] = []
    fit(
        model,
        windows or sine_windows(),
        cfg,
        inverse_targets=lambda y: y,
        report=lambda metrics, state: reports.append((metrics, state)),
        checkpoint=checkpoint,
        device=torch.device("cpu"),
    )
    return reports


def test_loss_falls_on_a_learnable_series():
    reports = train(TrainConfig(max_epochs=8, batch_size=32, lr=0.01))
    losses = [m["val_rmse"] for m, _ in reports]
    assert [m["epoch"] for m, _ in reports] == list(range(1, 9))
    assert losses[-1] < 0.5 * losses[0]
    assert reports[-1][0]["val_mae"] <= reports[-1][0]["val_rmse"]


def test_same_seed_gives_the_same_metrics():
    cfg = TrainConfig(max_epochs=2, batch_size=64)
    first = [m for m, _ in train(cfg)]
    assert first == [m for m, _ in train(cfg)]


def test_restored_checkpoint_continues_the_same_curve():
    cfg = TrainConfig(max_epochs=4, batch_size=64)
    straight = [m for m, _ in train(cfg)]
    first_half = train(TrainConfig(max_epochs=2, batch_size=64))
    resumed = [m for m, _ in train(cfg, checkpoint=first_half[-1][1], seed=123)]
    assert [m["epoch"] for m in resumed] == [3, 4]
    assert resumed == straight[2:]


def test_checkpoint_state_loads_with_weights_only(tmp_path):
    _, state = train(TrainConfig(max_epochs=1))[-1]
    torch.save(state, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert loaded["epoch"] == 1 and set(loaded) >= {"model", "optimizer", "rng"}


def test_nan_loss_raises_diverged_with_the_epoch():
    windows = sine_windows()
    windows["train"].y[:] = np.nan
    with pytest.raises(DivergedError, match="at epoch 1"):
        train(TrainConfig(max_epochs=3), windows=windows)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_optimizer_trains(optimizer):
    reports = train(TrainConfig(max_epochs=2, optimizer=optimizer, lr=0.01))
    assert all(np.isfinite(m["train_loss"]) for m, _ in reports)
