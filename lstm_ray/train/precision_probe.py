"""Whether a device can train in the precision a config asks for, found out by trying it: one step of a tiny
model of each configured cell type under autocast, as `training.Trainer` trains.

    check_precision(cfg)                        # ConfigError naming train.precision when the trials' device cannot
    precision_problem("bf16", "lstm", "cpu")    # "" or why not; cached per process

bf16 on a CPU without AVX-512 bf16 fails inside oneDNN's LSTM ("could not create a primitive descriptor for the
LSTM forward propagation primitive") in every trial, while a GRU on the same CPU runs (autocast leaves it in
fp32). Which cell and CPU work depends on the torch build, so the probe runs the real kernels rather than reading
CPU flags. fp16 needs a GPU: CPU kernels have no fp16 LSTM.
"""

from __future__ import annotations

import functools

import torch

from lstm_ray.config import ExperimentConfig, ModelConfig
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.train.models import build_model
from lstm_ray.train.training import PRECISIONS

__all__ = ["check_precision", "precision_problem", "trial_device"]

FIX = "set train.precision: fp32, or run the trials on a GPU or on a CPU with AVX-512 bf16 support"


def trial_device(cfg: ExperimentConfig) -> torch.device:
    """The device a trial of `cfg` trains on here: CUDA when it asks for a GPU and one is visible, else the CPU
    (Ray hides the GPUs from a trial that asks for none)."""
    return torch.device("cuda" if cfg.resources.gpu > 0 and torch.cuda.is_available() else "cpu")


def check_precision(cfg: ExperimentConfig, device: torch.device | None = None) -> None:
    """Raise ConfigError (train.precision) when `device` (default: `trial_device(cfg)`) cannot train a trial of
    `cfg`: every precision and cell type the config or its search space can give a trial is tried."""
    device = device or trial_device(cfg)
    precisions = _values(cfg, "train.precision", cfg.train.precision)
    if "fp16" in precisions and device.type == "cpu":
        raise ConfigError(
            "train.precision",
            "fp16 needs a GPU (CPU kernels have no fp16 LSTM) and these trials run on the CPU; "
            "use fp32 (or bf16), or give each trial a GPU with resources.gpu",
        )
    for precision in precisions:
        for cell in _values(cfg, "model.cell", cfg.model.cell):
            problem = precision_problem(precision, cell, device.type)
            if problem:
                raise ConfigError(
                    "train.precision", f"{precision} cannot train a {cell} on this {device.type} ({problem}); {FIX}"
                )


@functools.cache
def precision_problem(precision: str, cell: str, device_type: str) -> str:
    """ "" when a tiny `cell` model takes a training step under `precision` autocast on `device_type`, else the
    error's first sentence. fp32 always runs. Leaves torch's random state as it was."""
    if precision == "fp32":
        return ""
    device = torch.device(device_type)
    with torch.random.fork_rng(devices=[]):
        model = build_model(ModelConfig(cell=cell, hidden_size=4), n_inputs=1).to(device)
    try:
        with torch.autocast(device_type, PRECISIONS[precision]):
            output = model(torch.zeros(2, 3, 1, device=device))
        output.float().sum().backward()
    except RuntimeError as err:  # oneDNN's or CUDA's refusal of the kernel
        return one_line(err).split(". ")[0]
    return ""


def _values(cfg: ExperimentConfig, path: str, base: str) -> list[str]:
    """The base value of `path` and every value its search-space dimension can give a trial."""
    dist = cfg.parsed_space().get(path)
    return list(dict.fromkeys([base, *(dist.representative_values() if dist else [])]))
