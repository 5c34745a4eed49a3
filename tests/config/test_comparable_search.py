"""Searches that would score trials on different validation targets are refused before the sweep starts."""

from __future__ import annotations

import pytest

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError

HORIZONS = [{"choice": [1, 3]}, {"grid": [2, 4]}, {"randint": [1, 4]}, {"choice": [2, 2]}]  # any distribution


@pytest.mark.parametrize(
    ("path", "spec", "message"),
    [
        *[("data.horizon", spec, "run one sweep per horizon") for spec in HORIZONS],
        ("data.missing", {"choice": ["interpolate", "drop"]}, "drop removes rows"),
        ("data.missing", {"grid": ["drop", "mask"]}, "search interpolate, ffill and mask, or run a separate sweep"),
    ],
)
def test_a_search_that_changes_the_validation_targets_is_refused(tiny_raw, path, spec, message):
    tiny_raw["search"]["space"] = {path: spec}
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(tiny_raw)
    assert caught.value.key == f"search.space.{path}"
    assert "trials cannot be compared" in str(caught.value)


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
