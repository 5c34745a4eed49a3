"""The Ray Tune function trainable: rebuild the trial's config, fetch shared data, train, report, checkpoint.

All training logic lives in `training.py`; this module only connects it to Tune's report / checkpoint API.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.data.dataset import PreparedData
from lstm_ray.data.windows import WindowSetting
from lstm_ray.models import SequenceModel, build_model
from lstm_ray.training import fit, seed_everything, select_device

CHECKPOINT_FILE = "checkpoint.pt"


def train_trial(params: dict[str, Any], *, experiment: ExperimentConfig, data: PreparedData) -> None:
    """One trial: `params` maps dotted config paths to this trial's values (its hyperparameters)."""
    cfg = apply_params(experiment, params)
    # Use exactly the cores Ray granted: more threads than that oversubscribes the node and slows every trial.
    torch.set_num_threads(max(1, int(cfg.resources.cpu)))
    seed_everything(cfg.train.seed)
    windows = data.windows(window_setting(cfg))
    model = build_model(cfg.model, len(data.input_index), len(data.target_index), cfg.data.horizon)
    extra = {
        "config": cfg.to_dict(),
        "model_args": model.model_args,
        "preprocessing": data.preprocessing_state(),
    }

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state | extra | {"metrics": metrics}, os.path.join(folder, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    fit(
        model,
        windows,
        cfg.train,
        inverse_targets=data.inverse_targets,
        report=report,
        checkpoint=load_checkpoint_state(tune.get_checkpoint()),
        device=select_device(prefer_gpu=cfg.resources.gpu > 0),
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
