"""The Ray Tune function trainable: rebuild the trial's config, fetch shared data, train, report, checkpoint.

All training logic lives in `training.py` (and `crossval.py`, `transfer.py`); this module only connects it
to Tune's report / checkpoint API.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.crossval import FoldTrainers
from lstm_ray.data.dataset import PreparedData
from lstm_ray.data.windows import WindowSetting
from lstm_ray.models import SequenceModel
from lstm_ray.schedulers import carry_hyperparameters
from lstm_ray.training import Trainer, run_epochs, seed_everything, select_device
from lstm_ray.transfer import CHECKPOINT_FILE, assemble_model


def train_trial(params: dict[str, Any], *, experiment: ExperimentConfig, data: PreparedData) -> None:
    """One trial: `params` maps dotted config paths to this trial's values (its hyperparameters)."""
    cfg = apply_params(experiment, params)
    # Use exactly the cores Ray granted: more threads than that oversubscribes the node and slows every trial.
    torch.set_num_threads(max(1, int(cfg.resources.cpu)))
    seed_everything(cfg.train.seed)
    data = data.for_config(cfg.data)  # the variant prepared for this trial's searched data.scaling etc.
    trainer = build_trainer(cfg, data, select_device(prefer_gpu=cfg.resources.gpu > 0))
    extra = {"config": cfg.to_dict(), "preprocessing": data.preprocessing_state()}

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state | extra | {"metrics": metrics}, os.path.join(folder, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    # PBT may hand this trial another trial's checkpoint with perturbed values: the config's values win.
    run_epochs(trainer, report, carry_hyperparameters(load_checkpoint_state(tune.get_checkpoint()), cfg))


def build_trainer(cfg: ExperimentConfig, data: PreparedData, device: torch.device) -> Trainer | FoldTrainers:
    """A Trainer on the holdout split, or with data.validation: cv one per fold (each its own fresh model)."""
    setting = window_setting(cfg)
    n_inputs = len(data.input_index)
    if cfg.data.task == "classify":
        shape = {"n_classes": data.n_classes}
    else:
        shape = {"n_targets": len(data.target_index), "horizon": cfg.data.horizon}
    common = {"monitor": cfg.search.metric, "device": device}
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


def window_setting(cfg: ExperimentConfig) -> WindowSetting:
    return WindowSetting(cfg.data.lookback, cfg.data.horizon, cfg.data.stride)


def load_checkpoint_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def model_from_checkpoint(state: dict[str, Any]) -> SequenceModel:
    """Rebuild a trained model from a checkpoint dict alone."""
    model = SequenceModel(**state["model_args"])
    model.load_state_dict(state["model"])
    return model.eval()
