"""served_latency_ms: a positive median time that grows with the network, and the model's mode is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig
from lstm_ray.data.windows import Windows
from lstm_ray.train.latency import served_latency_ms
from lstm_ray.train.models import build_model


def _windows(n: int = 5) -> Windows:
    rng = np.random.default_rng(0)
    return Windows(x=rng.normal(size=(n, 16, 1)).astype(np.float32), y=np.zeros((n, 1, 1), np.float32))


def _model(hidden: int) -> torch.nn.Module:
    return build_model(ModelConfig(hidden_size=hidden, num_layers=2), 1, 1, 1)


def test_a_much_larger_network_takes_longer_per_served_batch():
    torch.set_num_threads(1)
    small = served_latency_ms(_model(4), _windows(), torch.device("cpu"), batch_size=64)
    large = served_latency_ms(_model(512), _windows(), torch.device("cpu"), batch_size=64)
    assert 0 < small < large


def test_the_model_keeps_its_mode_and_an_empty_split_is_refused():
    model = _model(4).train()
    served_latency_ms(model, _windows(), torch.device("cpu"), batch_size=3, repeats=1)
    assert model.training
    with pytest.raises(ValueError, match="need windows"):
        served_latency_ms(model, _windows(0), torch.device("cpu"), batch_size=3)
