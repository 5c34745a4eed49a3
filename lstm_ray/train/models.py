"""The recurrent network family: RNN / LSTM / GRU cells, stacked, optionally bidirectional, pooled, with a linear head.

    model = build_model(cfg.model, n_inputs=1, n_targets=1, horizon=4)
    model(x)  # x: (batch, lookback, n_inputs) -> (batch, horizon, n_targets)
    classifier = build_model(cfg.model, n_inputs=12, n_classes=9)
    classifier(x, lengths)  # x zero-padded (batch, steps, n_inputs), lengths (batch,) -> (batch, 9) logits

Padding never changes the output: sequences are packed for the fast cuDNN / oneDNN kernels, and the pooling
heads mask the padded steps. `model_args` is the plain-data recipe saved in checkpoints so that
`SequenceModel(**model_args)` rebuilds the network.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_ray.config import ModelConfig
from lstm_ray.train.recurrent import State, dropout_masks, unrolled
from lstm_ray.train.window_frame import WindowFrame

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
INITS = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming": nn.init.kaiming_normal_,  # He: std sqrt(2 / fan_in)
    "orthogonal": nn.init.orthogonal_,
}
NOT_ARCHITECTURE = ("embedding_vectors", "embedding_freeze", "init_from", "freeze")  # ModelConfig keys used elsewhere


class SequenceModel(nn.Module):
    def __init__(
        self,
        n_inputs: int,
        n_targets: int = 1,
        horizon: int = 1,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        head: str = "last",
        highway: int = 0,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        init: str = "default",
        forget_bias: float | None = None,
        embedding_dim: int = 0,
        vocab_size: int = 0,
        n_classes: int = 0,
        window_norm: str = "none",
        difference: bool = False,
        target_inputs: list[int] | None = None,
        norm_inputs: list[int] | None = None,
    ):
        super().__init__()
        self.model_args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.task = "classify" if n_classes else "forecast"
        self.horizon, self.n_targets, self.pooling = horizon, n_targets, head
        self.directions = 2 if bidirectional else 1
        self.recurrent_dropout = recurrent_dropout
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0) if embedding_dim else None
        width_in = n_inputs - 1 + embedding_dim if embedding_dim else n_inputs  # token column -> its vector
        extra = {"proj_size": proj_size} if cell == "lstm" else {}  # projections exist for LSTMs only
        self.rnn = CELLS[cell](
            width_in,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch applies it between stacked layers only
            bidirectional=bidirectional,
            **extra,
        )
        width = (self.rnn.proj_size or hidden_size) * self.directions
        self.attention = (
            nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False))
            if head == "attention"
            else None
        )
        self.input_dropout = nn.Dropout(input_dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes or horizon * n_targets)
        initialise_recurrent(self.rnn, cell, init, forget_bias)
        self.frame = None
        if window_norm != "none" or difference:
            self.frame = WindowFrame(window_norm, difference, target_inputs or [], norm_inputs or [])
        self.target_inputs = list(target_inputs or [])
        if highway and len(self.target_inputs) != n_targets:
            raise ValueError("model.highway reads the targets' own history: every target must be an input")
        self.highway = nn.Linear(highway, horizon) if highway and not n_classes else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, tbptt: int = 0) -> torch.Tensor:
        """Forecast (batch, horizon, n_targets), or class logits (batch, n_classes).

        `lengths` (batch,) marks the valid steps of zero-padded sequences (None: all steps are valid).
        `tbptt` > 0 cuts the gradient every `tbptt` steps; the values computed do not change.
        A forecaster with a window frame reads each window relative to itself and maps its output back.
        """
        restore = None
        if self.frame is not None:
            x, restore = self.frame(x)
        outputs, final = self.encode(x, lengths, tbptt)
        out = self.head(self.dropout(self.pool(outputs, final, lengths)))
        if self.task == "classify":
            return out
        out = out.view(-1, self.horizon, self.n_targets)
        if self.highway is not None:  # LSTNet's linear path: (batch, steps, targets) -> (batch, horizon, targets)
            recent = x[:, -self.highway.in_features :, self.target_inputs]
            out = out + self.highway(recent.transpose(1, 2)).transpose(1, 2)
        return out if restore is None else restore(out)

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, tbptt: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-layer outputs (batch, steps, width) and final states (batch, width), both directions joined."""
        inputs = self.input_dropout(self.embed(x))
        masks = None
        if self.recurrent_dropout > 0 and self.training:
            masks = dropout_masks(self.rnn, len(x), self.recurrent_dropout, x.device)  # kept across tbptt chunks
        state: State | None = None
        pieces = []
        bounds = _chunk_bounds(x.shape[1], tbptt)
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            piece = inputs[:, start:end]
            piece_lengths = None if lengths is None else (lengths - start).clamp(0, piece.shape[1])
            if state is not None:
                state = _detached(state)
            out, state = self._run(piece, piece_lengths, state, masks)
            pieces.append(out)
        hidden = state[0] if isinstance(state, tuple) else state
        # The top layer's final state of each direction: the backward one has read the whole window too.
        return torch.cat(pieces, dim=1), torch.cat(list(hidden[-self.directions :]), dim=-1)

    def pool(self, outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if self.pooling == "last":
            return final
        valid = _valid_steps(outputs, lengths)
        if self.pooling == "mean":
            return (outputs * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return (self.attend(outputs, valid)[..., None] * outputs).sum(1)

    def attend(self, outputs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Attention weights (batch, steps): a softmax over each sequence's valid steps, zero on padding."""
        scores = self.attention(outputs).squeeze(-1).masked_fill(~valid, float("-inf"))
        return torch.softmax(scores.float(), dim=1).to(outputs.dtype)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """How much each time step contributes to the pooled vector (head: attention only)."""
        if self.attention is None:
            raise ValueError(f"this model pools with {self.pooling!r}; attention weights need head: attention")
        outputs, _ = self.encode(x, lengths)
        return self.attend(outputs, _valid_steps(outputs, lengths))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return x
        return torch.cat([self.embedding(x[..., 0].long()), x[..., 1:]], dim=-1)

    def _run(
        self, x: torch.Tensor, lengths: torch.Tensor | None, state: State | None, masks: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, State]:
        if masks is not None:
            return unrolled(self.rnn, x, lengths, state, masks)
        if lengths is None or bool((lengths == x.shape[1]).all()):
            return self.rnn(x, state)
        live = lengths > 0
        if bool(live.all()):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], state
        # Sequences that ended before this tbptt chunk keep their state and output nothing.
        full_state = state if state is not None else _zero_state(self.rnn, x)
        out_live, state_live = self._run(x[live], lengths[live], _rows(full_state, live), None)
        outputs = x.new_zeros(x.shape[:2] + out_live.shape[2:])
        outputs[live] = out_live
        return outputs, _set_rows(full_state, live, state_live)


def build_model(
    cfg: ModelConfig,
    n_inputs: int,
    n_targets: int = 1,
    horizon: int = 1,
    *,
    n_classes: int = 0,
    vectors: np.ndarray | None = None,
    frame: dict | None = None,
) -> SequenceModel:
    """The model `cfg` describes: a forecaster, or a classifier when `n_classes` > 0.

    `frame` (window_norm, difference, target_inputs, norm_inputs; see `PreparedData.window_frame`) makes a
    forecaster read each window relative to itself.
    `vectors` (vocab_size, dim) are pretrained token vectors the embedding starts from (row 0 is padding);
    the parts named in `cfg.freeze` (and the embedding with `cfg.embedding_freeze`) do not train.
    """
    args = {k: v for k, v in asdict(cfg).items() if k not in NOT_ARCHITECTURE}
    if vectors is not None:
        args |= {"vocab_size": len(vectors), "embedding_dim": vectors.shape[1]}
    model = SequenceModel(
        n_inputs=n_inputs, n_targets=n_targets, horizon=horizon, n_classes=n_classes, **args, **(frame or {})
    )
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(torch.as_tensor(vectors))
    freeze(model, cfg.freeze + (["embedding"] if cfg.embedding_freeze else []))
    return model


def model_from_state(state: dict) -> SequenceModel:
    """The evaluation-mode model saved in `state` (a checkpoint or `network.pt` dict: model_args, model)."""
    model = SequenceModel(**state["model_args"])
    model.load_state_dict(state["model"])
    return model.eval()


def part_of(name: str) -> list[str]:
    """The `model.freeze` parts a parameter name belongs to, e.g. rnn.weight_hh_l1 -> recurrent, recurrent.1."""
    top = name.split(".")[0]
    if top == "rnn":
        layer = name.split("_l")[-1].removesuffix("_reverse")
        return ["recurrent", f"recurrent.{layer}"]
    return [top]


def freeze(model: nn.Module, parts: list[str]) -> None:
    """Stop the named parts from training: their parameters get no gradient and no optimiser update."""
    for name, parameter in model.named_parameters():
        if set(part_of(name)) & set(parts):
            parameter.requires_grad_(False)


def initialise_recurrent(rnn: nn.RNNBase, cell: str, scheme: str, forget_bias: float | None) -> None:
    """Apply `scheme` to each gate's block of the hidden-to-hidden weights; set the LSTM forget-gate bias.

    The forget bias goes into bias_ih and bias_hh is zeroed there, so that the gate's total bias is the value.
    """
    with torch.no_grad():
        for name, parameter in rnn.named_parameters():
            if name.startswith("weight_hh") and scheme != "default":
                for block in parameter.chunk(GATES[cell], dim=0):
                    INITS[scheme](block)
            if cell == "lstm" and forget_bias is not None and name.startswith("bias_"):
                forget = parameter[rnn.hidden_size : 2 * rnn.hidden_size]
                forget.fill_(forget_bias if name.startswith("bias_ih") else 0.0)


def _valid_steps(outputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    steps = torch.arange(outputs.shape[1], device=outputs.device)[None, :]
    if lengths is None:
        return torch.ones(outputs.shape[:2], dtype=torch.bool, device=outputs.device)
    return steps < lengths.to(outputs.device)[:, None]


def _chunk_bounds(steps: int, tbptt: int) -> list[int]:
    """Chunk edges counted back from the last step, so the final output's gradient reaches a full tbptt steps."""
    if not tbptt or tbptt >= steps:
        return [0, steps]
    return sorted({0, *range(steps % tbptt, steps + 1, tbptt)})


def _detached(state: State) -> State:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _zero_state(rnn: nn.RNNBase, x: torch.Tensor) -> State:
    directions = 2 if rnn.bidirectional else 1
    h = x.new_zeros(rnn.num_layers * directions, len(x), rnn.proj_size or rnn.hidden_size)
    if isinstance(rnn, nn.LSTM):
        return h, x.new_zeros(rnn.num_layers * directions, len(x), rnn.hidden_size)
    return h


def _rows(state: State, rows: torch.Tensor) -> State:
    return tuple(s[:, rows] for s in state) if isinstance(state, tuple) else state[:, rows]


def _set_rows(state: State, rows: torch.Tensor, values: State) -> State:
    if isinstance(state, tuple):
        return tuple(_set_rows(s, rows, v) for s, v in zip(state, values, strict=True))
    out = state.clone()
    out[:, rows] = values
    return out
