from __future__ import annotations

import pytest
import torch

from lstm_ray.config import ModelConfig
from lstm_ray.models import SequenceModel, build_model, count_parameters


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_shape_is_batch_horizon_targets(cell, bidirectional, num_layers):
    model = build_model(
        ModelConfig(cell=cell, hidden_size=8, num_layers=num_layers, dropout=0.1, bidirectional=bidirectional),
        n_inputs=3,
        n_targets=2,
        horizon=4,
    )
    assert model(torch.randn(5, 12, 3)).shape == (5, 4, 2)


def test_cell_type_changes_the_recurrent_layer():
    sizes = {
        cell: count_parameters(build_model(ModelConfig(cell=cell, hidden_size=8), 1, 1, 1))
        for cell in ("rnn", "gru", "lstm")
    }
    assert sizes["rnn"] < sizes["gru"] < sizes["lstm"]  # 1, 3 and 4 gates


def test_bidirectional_head_reads_both_directions():
    model = build_model(ModelConfig(hidden_size=8, bidirectional=True), 1, 1, 1)
    assert model.head.in_features == 16


def test_model_args_rebuild_the_same_network():
    model = build_model(ModelConfig(cell="gru", hidden_size=8, num_layers=2), 2, 1, 3)
    copy = SequenceModel(**model.model_args)
    copy.load_state_dict(model.state_dict())
    x = torch.randn(4, 6, 2)
    assert torch.equal(model.eval()(x), copy.eval()(x))
