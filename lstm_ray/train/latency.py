"""How long a trial's network takes to answer one served batch: the `latency_ms` objective of search.objectives.

    latency_ms = served_latency_ms(model, windows["val"], device, batch_size=64)

Measured by the trial itself, on its own device and with the cores Ray gave it, so a front of error against
latency reflects where the model would run. The time depends on the architecture and the batch's shape, not on
the weights, so one measurement per trial (before it trains) stands for every epoch.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from lstm_ray.data.windows import Windows


def served_latency_ms(
    model: nn.Module, windows: Windows, device: torch.device, batch_size: int, repeats: int = 5
) -> float:
    """Median milliseconds of one forward pass (no gradients, eval mode) over `batch_size` windows of `windows`
    (repeated when there are fewer), after one warm-up pass; the model's train/eval mode is restored.

    Raises ValueError when `windows` is empty or `repeats` < 1.
    """
    if not len(windows) or repeats < 1:
        raise ValueError(f"need windows and repeats >= 1, got {len(windows)} windows and repeats={repeats}")
    rows = np.resize(np.arange(len(windows)), batch_size)  # the served shape, whatever the split's size
    x = torch.as_tensor(windows.x[rows]).to(device)
    lengths = None if windows.lengths is None else torch.as_tensor(windows.lengths[rows])
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for k in range(repeats + 1):
                _synchronize(device)
                start = time.perf_counter()
                model(x, lengths)
                _synchronize(device)
                if k:  # the first pass warms caches and kernels up
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        model.train(was_training)
    return statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
