"""Validation of the model and training keys, and of search.metric against the task."""

from __future__ import annotations

import pytest

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError


def build(tiny_raw, section, **values):
    tiny_raw[section] |= values
    return parse_config(tiny_raw)


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("model", {"proj_size": 8}, "model.proj_size: must be below hidden_size 8"),
        ("model", {"recurrent_dropout": 1.0}, "model.recurrent_dropout: must be in [0, 1)"),
        ("model", {"freeze": ["recurent"]}, "did you mean 'recurrent'?"),
        ("model", {"freeze": ["recurrent.1"]}, "'recurrent.1' is not a part of this model"),
        ("model", {"freeze": ["attention"]}, "there is no attention with head 'last'"),
        ("model", {"embedding_dim": 4}, "model.vocab_size: an embedding needs the number of token ids"),
        ("model", {"init_from": "/nowhere/checkpoint.pt"}, "model.init_from: '/nowhere/checkpoint.pt' is neither"),
        ("model", {"head": "max"}, "model.head: 'max' is not one of"),
        ("train", {"nesterov": True, "optimizer": "sgd"}, "train.nesterov: needs optimizer sgd with momentum > 0"),
        ("train", {"schedule": "onecycle", "warmup_epochs": 2}, "must be below max_epochs 2"),
        ("train", {"lr_decay": 1.0}, "train.lr_decay: must be in (0, 1)"),
        ("train", {"precision": "fp8"}, "train.precision: 'fp8' is not one of"),
    ],
)
def test_bad_model_and_train_values_name_the_key_and_the_fix(tiny_raw, section, values, message):
    with pytest.raises(ConfigError) as err:
        build(tiny_raw, section, **values)
    assert message in str(err.value)


def test_tbptt_with_a_bidirectional_model_is_refused(tiny_raw):
    tiny_raw["model"]["bidirectional"] = True
    with pytest.raises(ConfigError, match="train.tbptt: cannot truncate a bidirectional model"):
        build(tiny_raw, "train", tbptt=4)


def test_search_metric_must_be_one_the_task_reports(tiny_raw):
    with pytest.raises(ConfigError) as err:
        build(tiny_raw, "search", metric="val_accuracy", mode="max")
    assert "forecast trials report val_loss, val_rmse, val_mae, val_mase, val_mape, val_smape" in str(err.value)
    assert build(tiny_raw, "search", metric="val_smape", mode="min").search.metric == "val_smape"


def test_search_mode_must_match_the_metric(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    with pytest.raises(ConfigError, match="search.mode: val_f1 is better higher; set search.mode: max"):
        build(tiny_raw, "search", metric="val_f1", mode="min")
    assert build(tiny_raw, "search", metric="val_auc", mode="max").search.mode == "max"


def test_new_keys_can_be_searched(tiny_raw):
    space = {
        "model.head": {"choice": ["last", "mean", "attention"]},
        "model.init": {"choice": ["orthogonal", "xavier_uniform"]},
        "model.recurrent_dropout": {"uniform": [0.0, 0.3]},
        "train.schedule": {"choice": ["none", "cosine", "onecycle"]},
        "train.tbptt": {"choice": [0, 4]},
        "train.l1": {"loguniform": [1.0e-6, 1.0e-3]},
    }
    assert build(tiny_raw, "search", space=space).parsed_space().keys() == space.keys()


def test_the_highway_must_fit_in_every_lookback_and_is_forecast_only(tiny_raw):
    tiny_raw["model"]["highway"] = 8
    parse_config(tiny_raw)  # lookback 8
    tiny_raw["search"]["space"] = {"data.lookback": {"choice": [4, 8]}}
    with pytest.raises(ConfigError, match=r"model.highway: reads the last 8 steps but a window has 4"):
        parse_config(tiny_raw)
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    tiny_raw["search"] = {"metric": "val_accuracy", "mode": "max"}
    with pytest.raises(ConfigError, match="model.highway: applies to forecast only"):
        parse_config(tiny_raw)


def test_a_classify_config_without_a_metric_maximises_accuracy_and_a_metric_brings_its_mode(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    cfg = parse_config(tiny_raw)
    assert (cfg.search.metric, cfg.search.mode) == ("val_accuracy", "max")
    tiny_raw["search"]["metric"] = "val_loss"
    assert parse_config(tiny_raw).search.mode == "min"
    tiny_raw["search"] |= {"metric": "val_f1", "mode": "min"}  # a mode given is checked, not replaced
    with pytest.raises(ConfigError, match="search.mode: val_f1 is better higher; set search.mode: max"):
        parse_config(tiny_raw)
