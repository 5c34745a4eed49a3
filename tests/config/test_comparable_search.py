"""Searches that would score trials on different validation targets are refused before the sweep starts."""

from __future__ import annotations

import pytest

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError


@pytest.mark.parametrize(
    "spec",
    [{"choice": [1, 3]}, {"grid": [2, 4]}, {"randint": [1, 4]}, {"choice": [2, 2]}],
)
def test_a_searched_horizon_is_refused_whatever_its_distribution(tiny_raw, spec):
    tiny_raw["search"]["space"] = {"data.horizon": spec}
    with pytest.raises(ConfigError, match="run one sweep per horizon") as caught:
        parse_config(tiny_raw)
    assert caught.value.key == "search.space.data.horizon"
    assert "trials cannot be compared" in str(caught.value)


@pytest.mark.parametrize("spec", [{"choice": ["interpolate", "drop"]}, {"grid": ["drop", "mask"]}])
def test_searching_missing_over_drop_is_refused(tiny_raw, spec):
    tiny_raw["search"]["space"] = {"data.missing": spec}
    with pytest.raises(ConfigError, match="drop removes rows") as caught:
        parse_config(tiny_raw)
    assert caught.value.key == "search.space.data.missing"
    assert "search interpolate, ffill and mask, or run a separate sweep with missing: drop" in str(caught.value)


def test_searching_missing_without_drop_is_allowed(tiny_raw):
    tiny_raw["search"]["space"] = {"data.missing": {"choice": ["interpolate", "ffill", "mask"]}}
    assert parse_config(tiny_raw).search.space["data.missing"] == {"choice": ["interpolate", "ffill", "mask"]}


def test_a_fixed_horizon_and_a_fixed_drop_stay_valid(tiny_raw):
    tiny_raw["data"] |= {"horizon": 3, "missing": "drop"}
    tiny_raw["search"]["space"] = {"data.lookback": {"choice": [4, 8]}}
    cfg = parse_config(tiny_raw)
    assert (cfg.data.horizon, cfg.data.missing) == (3, "drop")


def test_a_condition_on_the_fixed_horizon_stays_valid(tiny_raw):
    tiny_raw["search"]["algorithm"] = "random"
    tiny_raw["search"]["space"] = {"model.hidden_size": {"choice": [4, 8], "when": {"data.horizon": 2}}}
    assert "model.hidden_size" in parse_config(tiny_raw).search.space


def test_the_list_of_searchable_data_keys_leaves_the_horizon_out(tiny_raw):
    tiny_raw["search"]["space"] = {"data.val_fraction": {"choice": [0.1, 0.2]}}
    with pytest.raises(ConfigError, match="data.val_fraction is fixed") as caught:
        parse_config(tiny_raw)
    assert "data.lookback, data.stride" in str(caught.value) and "horizon" not in str(caught.value)
