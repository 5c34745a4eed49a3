"""Per-window normalisation and differencing: what the network reads, and its outputs mapped back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig
from lstm_ray.data.preprocess import log_targets, unlog_targets
from lstm_ray.train.models import SequenceModel, build_model, model_from_state
from lstm_ray.train.window_frame import WindowFrame

TREND = torch.arange(24, dtype=torch.float32).view(2, 6, 2) * 0.5 + 3  # 2 windows, 6 steps, 2 inputs (0 is the target)


def test_last_value_norm_reads_changes_since_the_last_step_and_a_zero_output_repeats_the_last_value():
    framed, restore = WindowFrame("last", False, targets=[0], columns=[0, 1])(TREND)
    assert torch.equal(framed[:, -1], torch.zeros(2, 2))
    assert torch.allclose(framed + TREND[:, -1:], TREND)  # the inverse of the framing is the identity
    assert torch.allclose(restore(torch.zeros(2, 3, 1)), TREND[:, -1:, :1].expand(2, 3, 1))


def test_standard_norm_gives_each_window_mean_zero_and_spread_one_and_maps_back_with_them():
    framed, restore = WindowFrame("standard", False, targets=[0], columns=[0, 1])(TREND)
    assert torch.allclose(framed.mean(dim=1), torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(framed.std(dim=1, unbiased=False), torch.ones(2, 2), atol=1e-5)
    mean, std = TREND[:, :, :1].mean(dim=1, keepdim=True), TREND[:, :, :1].std(dim=1, unbiased=False, keepdim=True)
    assert torch.allclose(restore(framed[:, -3:, :1]), TREND[:, -3:, :1])  # round trip of in-frame values
    assert torch.allclose(restore(torch.ones(2, 1, 1)), mean + std)


def test_mean_norm_and_a_flat_window():
    flat = torch.full((1, 5, 1), 7.0)
    framed, restore = WindowFrame("standard", False, targets=[0], columns=[0])(flat)
    assert torch.equal(framed, torch.zeros_like(flat)) and torch.allclose(restore(torch.zeros(1, 2, 1)), flat[:, :2])
    framed, restore = WindowFrame("mean", False, targets=[0], columns=[0])(TREND[:, :, :1])
    assert torch.allclose(restore(framed), TREND[:, :, :1])


def test_differencing_reads_changes_and_adds_predicted_changes_up_from_the_last_value():
    framed, restore = WindowFrame("none", True, targets=[0], columns=[0, 1])(TREND)
    assert torch.allclose(framed[:, 1:, 0], torch.full((2, 5), 1.0))  # the target steps by 1.0 each row
    assert torch.equal(framed[:, :, 1], TREND[:, :, 1])  # other inputs are left alone
    out = restore(torch.full((2, 3, 1), 1.0))  # three more steps of the same change
    assert torch.allclose(out[..., 0], TREND[:, -1:, 0] + torch.tensor([1.0, 2.0, 3.0]))


def test_inputs_that_are_not_numeric_are_not_normalised_and_bad_settings_are_refused():
    framed, _ = WindowFrame("standard", False, targets=[0], columns=[0])(TREND)
    assert torch.equal(framed[:, :, 1], TREND[:, :, 1])
    with pytest.raises(ValueError, match="differencing needs the targets"):
        WindowFrame("none", True, targets=[], columns=[0])
    with pytest.raises(ValueError, match="unknown window norm"):
        WindowFrame("robust", False, targets=[0], columns=[0])


@pytest.mark.parametrize(("norm", "difference"), [("last", False), ("standard", True), ("mean", False)])
def test_the_frame_is_part_of_the_saved_model(norm, difference):
    frame = {"window_norm": norm, "difference": difference, "target_inputs": [0], "norm_inputs": [0, 1]}
    model = build_model(ModelConfig(hidden_size=4), 2, 1, 3, frame=frame).eval()
    copy = model_from_state({"model": model.state_dict(), "model_args": model.model_args})
    assert isinstance(copy, SequenceModel) and copy.frame is not None and copy.frame.norm == norm
    with torch.no_grad():
        assert torch.equal(model(TREND), copy(TREND))
        shifted = model(TREND + 100.0) - model(TREND)
    if norm in ("last", "mean"):  # a window moved up by 100 is forecast 100 higher: levels do not saturate
        assert torch.allclose(shifted, torch.full_like(shifted, 100.0), atol=1e-3)


def test_log_transform_round_trips():
    values = np.array([[1.0, -2.0], [np.e, 5.0], [np.nan, 0.5]])
    logged = log_targets(values, ["y", "x"], ["y"], "log_diff")
    assert logged[:2, 0] == pytest.approx([0.0, 1.0]) and np.isnan(logged[2, 0])
    assert np.array_equal(logged[:, 1], values[:, 1])  # only the targets
    assert unlog_targets(logged[:2, :1], "log")[:, 0] == pytest.approx([1.0, np.e])
    assert log_targets(values, ["y", "x"], ["y"], "diff") is values


def test_the_highway_adds_a_linear_autoregression_of_the_framed_targets():
    frame = {"window_norm": "last", "difference": False, "target_inputs": [0], "norm_inputs": [0, 1]}
    model = build_model(ModelConfig(hidden_size=4, highway=3), 2, 1, 2, frame=frame).eval()
    plain = SequenceModel(**(model.model_args | {"highway": 0}))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("highway")})
    plain.eval()
    framed, _ = model.frame(TREND)
    with torch.no_grad():
        linear = model.highway(framed[:, -3:, 0])  # (windows, horizon)
        assert torch.allclose(model(TREND)[..., 0], plain(TREND)[..., 0] + linear)
    with pytest.raises(ValueError, match="every target must be an input"):
        build_model(ModelConfig(highway=2), 2, 1, 1, frame=frame | {"target_inputs": []})
