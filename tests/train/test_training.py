"""The epoch loop alone: no Ray, a model trained in about a second."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig, TrainConfig, parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.train.crossval import FoldTrainers
from lstm_ray.train.models import build_model
from lstm_ray.train.precision_probe import check_precision, precision_problem
from lstm_ray.train.training import DivergedError, Trainer, evaluate, fit, seed_everything

CPU = torch.device("cpu")


def train(cfg: TrainConfig, windows, checkpoint=None, seed=0, model_cfg=None, monitor="val_loss"):
    seed_everything(seed)
    model = build_model(model_cfg or ModelConfig(hidden_size=16), 1, 1, 1)
    reports: list[tuple[dict, dict]] = []
    fit(
        model,
        windows,
        cfg,
        inverse_targets=lambda y: y,
        report=lambda metrics, state: reports.append((metrics, copy.deepcopy(state))),  # state is live
        checkpoint=checkpoint,
        device=CPU,
        monitor=monitor,
    )
    return reports


def test_loss_falls_on_a_learnable_series(sine_windows):
    reports = train(TrainConfig(max_epochs=8, batch_size=32, lr=0.01), sine_windows())
    losses = [m["val_rmse"] for m, _ in reports]
    assert [m["epoch"] for m, _ in reports] == list(range(1, 9))
    assert losses[-1] < 0.5 * losses[0]
    assert reports[-1][0]["val_mae"] <= reports[-1][0]["val_rmse"]
    assert {"val_mape", "val_smape", "train_lr"} <= set(reports[-1][0])


def test_same_seed_gives_the_same_metrics(sine_windows):
    cfg = TrainConfig(max_epochs=2, batch_size=64)
    model_cfg = ModelConfig(hidden_size=16, dropout=0.2, recurrent_dropout=0.2)
    first = [m for m, _ in train(cfg, sine_windows(), model_cfg=model_cfg)]
    assert first == [m for m, _ in train(cfg, sine_windows(), model_cfg=model_cfg)]


def test_restored_checkpoint_continues_the_same_curve(sine_windows):
    # Dropout, momentum, a schedule and early stopping all carry state that a restore must bring back.
    model_cfg = ModelConfig(hidden_size=16, dropout=0.2, input_dropout=0.1)
    kwargs = dict(batch_size=64, optimizer="sgd", momentum=0.9, lr=0.05, schedule="cosine", warmup_epochs=1)
    straight = [
        m for m, _ in train(TrainConfig(max_epochs=4, patience=3, **kwargs), sine_windows(), model_cfg=model_cfg)
    ]
    first_half = train(TrainConfig(max_epochs=4, patience=3, **kwargs), sine_windows(), model_cfg=model_cfg)[:2]
    resumed = train(
        TrainConfig(max_epochs=4, patience=3, **kwargs),
        sine_windows(),
        checkpoint=first_half[-1][1],
        seed=123,
        model_cfg=model_cfg,
    )
    assert [m["epoch"] for m, _ in resumed] == [3, 4]
    assert [m for m, _ in resumed] == straight[2:]


def test_checkpoint_is_self_describing_and_loads_with_weights_only(tmp_path, sine_windows):
    _, state = train(TrainConfig(max_epochs=1, schedule="plateau"), sine_windows())[-1]
    torch.save(state, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert loaded["epoch"] == 1
    assert set(loaded) >= {"model", "model_args", "optimizer", "schedule", "scaler", "early_stopping", "rng"}


def test_nan_loss_raises_diverged_with_the_epoch(sine_windows):
    windows = sine_windows()
    windows["train"].y[:] = np.nan
    with pytest.raises(DivergedError, match="at epoch 1"):
        train(TrainConfig(max_epochs=3), windows)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_optimizer_trains(optimizer, sine_windows):
    reports = train(TrainConfig(max_epochs=2, optimizer=optimizer, lr=0.01), sine_windows())
    assert all(np.isfinite(m["train_loss"]) for m, _ in reports)


def test_sgd_momentum_and_nesterov_change_the_updates(sine_windows):
    plain = train(TrainConfig(max_epochs=1, optimizer="sgd", lr=0.01), sine_windows())
    momentum = train(TrainConfig(max_epochs=1, optimizer="sgd", lr=0.01, momentum=0.9), sine_windows())
    nesterov = train(TrainConfig(max_epochs=1, optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True), sine_windows())
    losses = {r[-1][0]["train_loss"] for r in (plain, momentum, nesterov)}
    assert len(losses) == 3
    group = nesterov[-1][1]["optimizer"]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["nesterov"] is True


def trainer_for(windows, cfg: TrainConfig, model_cfg=None, n_classes=0):
    seed_everything(0)
    n_inputs = windows["train"].x.shape[2]
    model = build_model(model_cfg or ModelConfig(hidden_size=8), n_inputs, 1, 1, n_classes=n_classes)
    return Trainer(model, windows, cfg, device=CPU)


def test_frozen_layer_weights_do_not_move(sine_windows):
    model_cfg = ModelConfig(hidden_size=8, num_layers=2, freeze=["recurrent.0"])
    trainer = trainer_for(sine_windows(), TrainConfig(max_epochs=2, lr=0.05, weight_decay=0.1), model_cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run_epoch()
    after = trainer.model.state_dict()
    for key, value in before.items():
        moved = not torch.equal(value, after[key])
        assert moved == ("_l0" not in key), key


def weight_sums(trainer):
    weights = [p.detach() for p in trainer.model.parameters() if p.dim() > 1]
    return sum(w.abs().sum() for w in weights).item(), sum(w.square().sum() for w in weights).item()


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_weight_penalties_shrink_the_weights(penalty, sine_windows):
    plain = trainer_for(sine_windows(), TrainConfig(max_epochs=3, lr=0.01))
    shrunk = trainer_for(sine_windows(), TrainConfig(max_epochs=3, lr=0.01, **{penalty: 0.01}))
    for trainer in (plain, shrunk):
        while not trainer.done:
            trainer.run_epoch()
    index = 0 if penalty == "l1" else 1
    assert weight_sums(shrunk)[index] < 0.9 * weight_sums(plain)[index]


def test_gradient_clipping_bounds_each_step(sine_windows):
    windows = sine_windows()
    cfg = TrainConfig(max_epochs=1, batch_size=len(windows["train"]), optimizer="sgd", lr=1.0, grad_clip=0.01)
    trainer = trainer_for(windows, cfg)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.run_epoch()  # one batch: one step of size lr * clipped gradient
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert 0 < (after - before).norm() <= 0.01 + 1e-6


def test_early_stopping_ends_a_trial_that_stops_improving(sine_windows):
    # min_delta larger than any possible improvement: every epoch after the first counts as no progress.
    reports = train(TrainConfig(max_epochs=10, patience=2, min_delta=100.0), sine_windows())
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert reports[-1][0]["early_stopped"] == 1.0 and reports[0][0]["early_stopped"] == 0.0
    assert len(train(TrainConfig(max_epochs=4, patience=0, min_delta=100.0), sine_windows())) == 4


def test_tbptt_trains_with_a_truncated_gradient(sine_windows):
    cfg = TrainConfig(max_epochs=3, lr=0.01, batch_size=32, tbptt=4)
    reports = train(cfg, sine_windows(), model_cfg=ModelConfig(hidden_size=16, head="mean"))
    assert reports[-1][0]["val_rmse"] < reports[0][0]["val_rmse"]


def test_bf16_autocast_trains_close_to_fp32_or_is_refused_where_the_cpu_cannot(sine_windows, tiny_raw):
    if precision_problem("bf16", "lstm", "cpu"):  # no AVX-512 bf16: the sweep refuses before any trial trains
        bf16_sweep = parse_config(tiny_raw | {"train": tiny_raw["train"] | {"precision": "bf16"}})
        with pytest.raises(ConfigError, match=r"^train\.precision: bf16 cannot train a lstm on this cpu .*fp32"):
            check_precision(bf16_sweep, CPU)
        return
    fp32 = train(TrainConfig(max_epochs=2, lr=0.01), sine_windows())[-1][0]
    bf16 = train(TrainConfig(max_epochs=2, lr=0.01, precision="bf16"), sine_windows())[-1][0]
    assert bf16["train_loss"] != fp32["train_loss"]  # reduced precision really ran
    assert bf16["val_rmse"] == pytest.approx(fp32["val_rmse"], rel=0.2)


def test_fp16_on_a_cpu_is_refused_with_the_fix(sine_windows):
    with pytest.raises(ConfigError, match="train.precision.*bf16"):
        train(TrainConfig(precision="fp16"), sine_windows())


def test_classifier_trains_end_to_end_and_reports_every_score(class_windows):
    windows = class_windows()
    trainer = trainer_for(windows, TrainConfig(max_epochs=12, lr=0.02, batch_size=32), n_classes=3)
    history = [trainer.run_epoch() for _ in range(12)]
    last = history[-1]
    assert {"val_loss", "val_accuracy", "val_f1", "val_auc"} <= set(last)
    assert last["val_accuracy"] > 0.6 and last["val_auc"] > 0.8  # chance is 1/3 and 0.5
    assert last["val_loss"] < history[0]["val_loss"]
    test = evaluate(trainer.model, windows["test"], lambda y: y, CPU)
    assert set(test) == {"loss", "accuracy", "f1", "auc"}


def test_cross_validation_reports_the_fold_mean_and_spread(sine_windows):
    folds = [sine_windows(phase=0.0), sine_windows(phase=1.0)]
    trainers = [trainer_for(w, TrainConfig(max_epochs=2)) for w in folds]
    cv = FoldTrainers(trainers)
    metrics = cv.run_epoch()
    each = [t.state() for t in trainers]
    assert metrics["val_rmse"] == pytest.approx(
        np.mean([evaluate(t.model, w["val"], lambda y: y, CPU)["rmse"] for t, w in zip(trainers, folds, strict=True)])
    )
    assert metrics["val_rmse_std"] >= 0 and len(cv.state()["folds"]) == 2 and each[0]["epoch"] == 1
