"""Each forecast window seen relative to itself: differenced targets and per-window normalisation, undone on output.

    frame = WindowFrame(norm="last", difference=False, targets=[0], columns=[0, 1])
    framed, restore = frame(x)       # x: (batch, lookback, inputs), scaled by the training rows
    forecast = restore(network(framed))  # (batch, horizon, targets), back on the training rows' scale

A network trained on globally scaled values cannot extrapolate: the later levels of a trending series lie
outside everything it saw, and a tanh network saturates there. Expressing every window relative to its own last
value, mean or mean and spread (RevIN, NeuralForecast's per-window `scaler_type`, GluonTS's mean scaling), or as
changes that are added back up over the horizon, keeps every window in the range the network was trained on.
The frame has no weights: its settings are part of the model's `model_args`, so checkpoints and the served
model undo it exactly as training did, and the loss is computed on the restored forecasts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

WINDOW_NORMS = ("none", "last", "mean", "standard")
MIN_SPREAD = 1e-3  # a flat window (spread 0 on the training rows' scale) is only shifted, not blown up


class WindowFrame(nn.Module):
    """`norm`: none | last | mean | standard, applied over the lookback to the `columns` (input positions of
    the numeric inputs); `difference`: the target inputs become step-to-step changes and the network predicts
    changes, summed onto the window's last target value. `targets` are the input positions of the forecast
    targets, in target order (empty when the targets are not inputs: then only the inputs are framed)."""

    def __init__(self, norm: str, difference: bool, targets: list[int], columns: list[int]):
        super().__init__()
        if norm not in WINDOW_NORMS:
            raise ValueError(f"unknown window norm {norm!r}; use one of {', '.join(WINDOW_NORMS)}")
        if difference and not targets:
            raise ValueError("differencing needs the targets among the inputs")
        missing = [t for t in targets if t not in columns]
        if norm != "none" and missing:
            raise ValueError(f"target inputs {missing} are not among the normalised columns {columns}")
        self.norm, self.difference = norm, difference
        self.targets, self.columns = list(targets), list(columns)
        self.within = [self.columns.index(t) for t in targets] if norm != "none" else []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The framed inputs, and the function that maps the network's (batch, horizon, targets) back."""
        level = x[:, -1, self.targets] if self.difference else None
        if self.difference:
            x = x.clone()
            steps = x[:, :, self.targets]
            x[:, :, self.targets] = torch.cat([torch.zeros_like(steps[:, :1]), steps.diff(dim=1)], dim=1)
        if self.norm == "none" or not self.columns:
            return x, lambda out: self._undifference(out, level)
        values = x[:, :, self.columns]
        centre, spread = self._statistics(values)
        x = x.clone()
        x[:, :, self.columns] = (values - centre) / spread
        if not self.within:
            return x, lambda out: self._undifference(out, level)
        target_centre, target_spread = centre[:, :, self.within], spread[:, :, self.within]
        return x, lambda out: self._undifference(out * target_spread + target_centre, level)

    def _statistics(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(centre, spread), each (batch, 1, columns), of every window over its lookback."""
        if self.norm == "last":
            return values[:, -1:], torch.ones_like(values[:, -1:])
        centre = values.mean(dim=1, keepdim=True)
        if self.norm == "mean":
            return centre, torch.ones_like(centre)
        return centre, values.std(dim=1, keepdim=True, unbiased=False).clamp(min=MIN_SPREAD)

    def _undifference(self, out: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        return out if level is None else level[:, None, :] + out.cumsum(dim=1)

    def extra_repr(self) -> str:
        return f"norm={self.norm}, difference={self.difference}, targets={self.targets}"
