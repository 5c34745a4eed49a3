"""The step-by-step recurrent run behind variational (recurrent) dropout."""

from __future__ import annotations

import copy

import pytest
import torch

from lstm_ray.config import ModelConfig
from lstm_ray.train.models import build_model
from lstm_ray.train.recurrent import dropout_masks, unrolled


@pytest.mark.parametrize(
    "cell, bidirectional, proj_size",
    [("lstm", False, 0), ("lstm", True, 3), ("gru", False, 0), ("gru", True, 0), ("rnn", True, 0)],
)
def test_without_masks_it_computes_what_torch_computes(cell, bidirectional, proj_size):
    cfg = ModelConfig(cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    rnn = build_model(cfg, 3, 1, 1).rnn.eval()
    x, lengths = torch.randn(4, 7, 3), torch.tensor([7, 3, 5, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, expected_state = rnn(packed)
    expected = torch.nn.utils.rnn.pad_packed_sequence(expected, batch_first=True, total_length=7)[0]
    outputs, state = unrolled(rnn, x, lengths, None, None)
    torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, expected_state, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_each_sequence_keeps_one_mask_for_every_step(cell):
    # Dropping hidden unit j at every step is the same as zeroing column j of the hidden-to-hidden weights.
    rnn = build_model(ModelConfig(cell=cell, hidden_size=6), 2, 1, 1).rnn.eval()
    x = torch.randn(3, 9, 2)
    torch.manual_seed(1)
    masks = dropout_masks(rnn, batch=3, p=0.5, device=x.device)
    assert not torch.equal(masks[0][0], masks[0][1])  # sequences draw their own masks
    outputs, _ = unrolled(rnn, x, None, None, masks)
    for i in range(3):
        masked = copy.deepcopy(rnn)
        with torch.no_grad():
            masked.weight_hh_l0.mul_(masks[0][i])
        expected, _ = masked(x[i : i + 1])
        torch.testing.assert_close(outputs[i : i + 1], expected, atol=1e-5, rtol=1e-5)


def test_masks_keep_units_with_probability_one_minus_p_and_rescale_them():
    rnn = build_model(ModelConfig(hidden_size=50, num_layers=2, bidirectional=True), 1, 1, 1).rnn
    masks = dropout_masks(rnn, batch=40, p=0.3, device=torch.device("cpu"))
    assert len(masks) == 4 and masks[0].shape == (40, 50)
    values = torch.stack(masks)
    kept = values[values != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    assert 0.25 < (values == 0).float().mean() < 0.35


def test_recurrent_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=8, recurrent_dropout=0.5), 1, 1, 1)
    plain = build_model(ModelConfig(hidden_size=8), 1, 1, 1)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 6, 1)
    assert not torch.equal(model.train()(x), model(x))
    assert torch.equal(model.eval()(x), plain.eval()(x))
