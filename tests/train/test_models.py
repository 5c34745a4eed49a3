from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig
from lstm_ray.train.models import SequenceModel, build_model, freeze


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    cfg = ModelConfig(cell="gru", hidden_size=8, num_layers=2, head="attention", embedding_dim=4, vocab_size=10)
    model = build_model(cfg, 2, 1, 3)
    copy = SequenceModel(**model.model_args)
    copy.load_state_dict(model.state_dict())
    x = torch.cat([torch.randint(0, 10, (4, 6, 1)).float(), torch.randn(4, 6, 1)], dim=-1)
    assert torch.equal(model.eval()(x), copy.eval()(x))


def test_classifier_outputs_one_logit_per_class():
    model = build_model(ModelConfig(hidden_size=8), n_inputs=2, n_classes=5)
    assert model.task == "classify"
    assert model(torch.randn(3, 7, 2), torch.tensor([7, 4, 1])).shape == (3, 5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("head", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_the_output(cell, head, bidirectional):
    cfg = ModelConfig(cell=cell, hidden_size=6, num_layers=2, head=head, bidirectional=bidirectional)
    model = build_model(cfg, n_inputs=2, n_classes=3).eval()
    lengths = torch.tensor([9, 4, 6])
    x = torch.randn(3, 9, 2)
    noisy = x.clone()
    for i, length in enumerate(lengths):
        noisy[i, length:] = 100 * torch.randn(9 - length, 2)  # whatever sits in the padding
    batched = model(noisy, lengths)
    alone = torch.cat([model(x[i : i + 1, :length]) for i, length in enumerate(lengths)])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_attention_weights_sum_to_one_and_skip_padding():
    model = build_model(ModelConfig(hidden_size=8, head="attention"), n_inputs=2, n_classes=2)
    lengths = torch.tensor([10, 3])
    weights = model.attention_weights(torch.randn(2, 10, 2), lengths)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    assert torch.all(weights[1, 3:] == 0) and torch.all(weights[1, :3] > 0)


def test_mean_head_averages_the_valid_steps():
    model = build_model(ModelConfig(hidden_size=8, head="mean"), n_inputs=1, n_classes=2).eval()
    x, lengths = torch.randn(2, 8, 1), torch.tensor([8, 5])
    outputs, final = model.encode(x, lengths)
    expected = torch.stack([outputs[0].mean(0), outputs[1, :5].mean(0)])
    torch.testing.assert_close(model.pool(outputs, final, lengths), expected)


def test_last_head_reads_the_final_state_of_each_sequence():
    model = build_model(ModelConfig(hidden_size=8, head="last"), n_inputs=1, n_classes=2).eval()
    x, lengths = torch.randn(2, 8, 1), torch.tensor([8, 5])
    outputs, final = model.encode(x, lengths)
    torch.testing.assert_close(final, torch.stack([outputs[0, 7], outputs[1, 4]]))


def test_proj_size_projects_lstm_states_and_is_ignored_by_other_cells():
    model = build_model(ModelConfig(hidden_size=8, proj_size=3, bidirectional=True), 1, 1, 1)
    assert model.rnn.weight_hr_l0.shape == (3, 8) and model.head.in_features == 6
    gru = build_model(ModelConfig(cell="gru", hidden_size=8, proj_size=3), 1, 1, 1)
    assert gru.head.in_features == 8


def test_input_dropout_zeroes_input_steps_while_training():
    model = build_model(ModelConfig(hidden_size=4, input_dropout=0.5), n_inputs=1)
    seen = []
    model.rnn.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model.train()(torch.ones(64, 50, 1))
    model.eval()(torch.ones(64, 50, 1))
    assert 0.4 < (seen[0] == 0).float().mean() < 0.6
    assert torch.all(seen[1] == 1)


def test_dropout_acts_between_layers_and_before_the_head():
    model = build_model(ModelConfig(hidden_size=8, num_layers=2, dropout=0.5), 1, 1, 1)
    assert model.rnn.dropout == 0.5
    seen = []
    model.head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model.train()(torch.randn(64, 5, 1))
    assert (seen[0] == 0).float().mean() > 0.3
    x = torch.randn(4, 5, 1)
    assert torch.equal(model.eval()(x), model(x))


def hidden_blocks(model, gates):
    return model.rnn.weight_hh_l0.detach().chunk(gates, dim=0)


def test_orthogonal_init_makes_every_gate_block_orthogonal():
    model = build_model(ModelConfig(hidden_size=16, init="orthogonal"), 1, 1, 1)
    for block in hidden_blocks(model, 4):
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "scheme, check",
    [
        ("xavier_uniform", lambda w, h: w.abs().max() <= math.sqrt(6 / (2 * h)) and w.std() > 0.8 * math.sqrt(1 / h)),
        ("xavier_normal", lambda w, h: abs(w.std() - math.sqrt(1 / h)) < 0.15 * math.sqrt(1 / h)),
        ("kaiming", lambda w, h: abs(w.std() - math.sqrt(2 / h)) < 0.15 * math.sqrt(2 / h)),
        ("default", lambda w, h: w.abs().max() <= 1 / math.sqrt(h)),  # torch's uniform(+-1/sqrt(hidden))
    ],
)
def test_init_scheme_sets_the_recurrent_weight_scale(scheme, check):
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="gru", hidden_size=64, init=scheme), 1, 1, 1)
    for block in hidden_blocks(model, 3):
        assert check(block, 64), scheme


def test_forget_bias_holds_its_value_at_init():
    model = build_model(ModelConfig(hidden_size=8, num_layers=2, bidirectional=True, forget_bias=1.5), 1, 1, 1)
    for suffix in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        total = getattr(model.rnn, "bias_ih" + suffix) + getattr(model.rnn, "bias_hh" + suffix)
        torch.testing.assert_close(total[8:16], torch.full((8,), 1.5))
        assert not torch.allclose(total[:8], torch.full((8,), 1.5))  # the other gates keep torch's init


def test_embedding_turns_token_ids_into_vectors():
    model = build_model(ModelConfig(hidden_size=8, embedding_dim=4, vocab_size=20), n_inputs=2, n_classes=2)
    assert model.rnn.input_size == 4 + 1  # the token's vector, then the other input column
    tokens = torch.tensor([[[3.0, 0.5], [7.0, 0.5]]])
    other = tokens.clone()
    other[0, 1, 0] = 8.0
    assert not torch.equal(model.eval()(tokens), model(other))
    assert torch.all(model.embedding.weight[0] == 0)  # id 0 is padding


def test_pretrained_vectors_seed_the_embedding():
    vectors = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    vectors[0] = 0
    model = build_model(ModelConfig(hidden_size=8, embedding_freeze=True), n_inputs=1, n_classes=2, vectors=vectors)
    assert torch.equal(model.embedding.weight.detach(), torch.as_tensor(vectors))
    assert not model.embedding.weight.requires_grad


def test_freeze_names_whole_parts_or_single_layers():
    model = build_model(ModelConfig(hidden_size=8, num_layers=2, bidirectional=True), 1, 1, 1)
    freeze(model, ["recurrent.1"])
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if "_l1" in n}
    freeze(model, ["head"])
    assert not model.head.weight.requires_grad and model.rnn.weight_hh_l0.requires_grad


def test_tbptt_limits_how_far_back_the_gradient_reaches():
    model = build_model(ModelConfig(hidden_size=8, head="last"), 1, 1, 1)
    x = torch.randn(2, 10, 1, requires_grad=True)
    model(x, tbptt=3).sum().backward()
    reach = x.grad.abs().sum(dim=(0, 2))
    assert torch.all(reach[:7] == 0) and torch.all(reach[7:] > 0)  # chunks [0,1) [1,4) [4,7) [7,10)
    x.grad = None
    model(x).sum().backward()
    assert torch.all(x.grad.abs().sum(dim=(0, 2)) > 0)


def test_tbptt_leaves_the_forward_values_unchanged():
    model = build_model(ModelConfig(hidden_size=8, head="mean", num_layers=2), 1, n_classes=3).eval()
    x, lengths = torch.randn(3, 11, 1), torch.tensor([11, 2, 7])
    torch.testing.assert_close(model(x, lengths, tbptt=4), model(x, lengths))
