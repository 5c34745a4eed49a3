"""The recurrent network family: RNN / LSTM / GRU cells, stacked, optionally bidirectional, with a linear head.

    model = build_model(cfg.model, n_inputs=1, n_targets=1, horizon=4)
    model(x)  # x: (batch, lookback, n_inputs) -> (batch, horizon, n_targets)

`model_args` is the plain-data recipe saved in checkpoints so `SequenceModel(**model_args)` rebuilds it.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from lstm_ray.config import ModelConfig

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SequenceModel(nn.Module):
    def __init__(
        self,
        n_inputs: int,
        n_targets: int,
        horizon: int,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ):
        super().__init__()
        self.model_args = {
            "n_inputs": n_inputs,
            "n_targets": n_targets,
            "horizon": horizon,
            "cell": cell,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
            "bidirectional": bidirectional,
        }
        self.horizon, self.n_targets = horizon, n_targets
        self.directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            n_inputs,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch applies it between stacked layers only
            bidirectional=bidirectional,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * self.directions, horizon * n_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        # The top layer's final state of each direction: the backward one has read the whole window too.
        last = torch.cat(list(hidden[-self.directions :]), dim=-1)
        return self.head(self.dropout(last)).view(-1, self.horizon, self.n_targets)


def build_model(cfg: ModelConfig, n_inputs: int, n_targets: int, horizon: int) -> SequenceModel:
    return SequenceModel(n_inputs=n_inputs, n_targets=n_targets, horizon=horizon, **asdict(cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
