"""Variational recurrent dropout: a step-by-step run of a torch `nn.LSTM` / `nn.GRU` / `nn.RNN` with its own weights.

    masks = dropout_masks(rnn, batch=32, p=0.25, device=x.device)   # one mask per sequence, layer and direction
    outputs, state = unrolled(rnn, x, lengths, state, masks)

cuDNN and oneDNN kernels cannot drop the hidden state between time steps, so during training with
`model.recurrent_dropout` the network runs this loop instead (Gal & Ghahramani, 2016): each sequence draws one
mask over the hidden units and uses it at every step. With no masks the loop computes exactly what the torch
module computes; evaluation always takes the fast kernel. Steps at or past a sequence's length neither
change its state nor produce output, like a packed sequence.
"""

from __future__ import annotations

import torch
from torch import nn

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def dropout_masks(rnn: nn.RNNBase, batch: int, p: float, device: torch.device) -> list[torch.Tensor]:
    """One (batch, hidden) mask per layer and direction: kept units scaled by 1 / (1 - p), dropped ones 0."""
    size = rnn.proj_size or rnn.hidden_size
    directions = 2 if rnn.bidirectional else 1
    keep = torch.full((rnn.num_layers * directions, batch, size), 1.0 - p, device=device)
    return list(torch.bernoulli(keep) / (1.0 - p))


def unrolled(
    rnn: nn.RNNBase,
    x: torch.Tensor,
    lengths: torch.Tensor | None,
    state: State | None,
    masks: list[torch.Tensor] | None,
) -> tuple[torch.Tensor, State]:
    """Run `rnn` over x (batch, steps, features) one step at a time; returns (outputs, final state) like torch.

    `state` and the returned state have torch's layout ((layers * directions, batch, hidden), a pair for
    LSTM); `masks[k]` multiplies the hidden state of layer/direction k wherever it feeds the recurrence.
    """
    batch, steps, _ = x.shape
    if lengths is None:
        lengths = torch.full((batch,), steps, dtype=torch.long)
    lengths = lengths.to(x.device)
    valid = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]  # (batch, steps)
    directions = 2 if rnn.bidirectional else 1
    h0, c0 = _initial_state(rnn, x, state)
    finals_h, finals_c = [], []
    layer_input = x
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(directions):
            k = layer * directions + direction
            seq = layer_input if direction == 0 else _reverse(layer_input, lengths)
            mask = None if masks is None else masks[k]
            out, h, c = _run_direction(
                rnn, layer, direction, seq, valid, h0[k], c0[k] if c0 is not None else None, mask
            )
            outputs.append(out if direction == 0 else _reverse(out, lengths))
            finals_h.append(h)
            finals_c.append(c)
        layer_input = torch.cat(outputs, dim=-1)
        if layer < rnn.num_layers - 1 and rnn.dropout > 0:
            layer_input = nn.functional.dropout(layer_input, rnn.dropout, rnn.training)
    h_n = torch.stack(finals_h)
    return layer_input, (h_n, torch.stack(finals_c)) if c0 is not None else h_n


def _initial_state(rnn: nn.RNNBase, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    directions = 2 if rnn.bidirectional else 1
    is_lstm = isinstance(rnn, nn.LSTM)
    if state is not None:
        return state if is_lstm else (state, None)
    shape = (rnn.num_layers * directions, x.shape[0], rnn.proj_size or rnn.hidden_size)
    h0 = x.new_zeros(shape)
    return h0, x.new_zeros(shape[:2] + (rnn.hidden_size,)) if is_lstm else None


def _run_direction(
    rnn: nn.RNNBase,
    layer: int,
    direction: int,
    x: torch.Tensor,
    valid: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor | None,
    mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_hh, b_hh = getattr(rnn, "weight_hh" + suffix), getattr(rnn, "bias_hh" + suffix)
    w_hr = getattr(rnn, "weight_hr" + suffix) if rnn.proj_size else None
    from_input = nn.functional.linear(x, getattr(rnn, "weight_ih" + suffix), getattr(rnn, "bias_ih" + suffix))
    outputs = []
    for t in range(x.shape[1]):
        fed = h if mask is None else h * mask
        from_hidden = nn.functional.linear(fed, w_hh, b_hh)
        new_h, new_c = _cell_step(rnn, from_input[:, t], from_hidden, h, c, w_hr)
        keep = valid[:, t, None]
        h = torch.where(keep, new_h, h)
        c = torch.where(keep, new_c, c) if c is not None else None
        outputs.append(torch.where(keep, new_h, torch.zeros_like(new_h)))
    return torch.stack(outputs, dim=1), h, c


def _cell_step(
    rnn: nn.RNNBase,
    from_input: torch.Tensor,
    from_hidden: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor | None,
    w_hr: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of torch's own equations (gate order i, f, g, o for LSTM and r, z, n for GRU)."""
    if isinstance(rnn, nn.LSTM):
        i, f, g, o = (from_input + from_hidden).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else h @ w_hr.T), c
    if isinstance(rnn, nn.GRU):
        r_x, z_x, n_x = from_input.chunk(3, dim=-1)
        r_h, z_h, n_h = from_hidden.chunk(3, dim=-1)
        r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
        n = torch.tanh(n_x + r * n_h)
        return (1 - z) * n + z * h, None
    activation = torch.tanh if rnn.nonlinearity == "tanh" else torch.relu
    return activation(from_input + from_hidden), None


def _reverse(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence's valid steps in reverse order; padding steps stay where they are."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand_as(x))
