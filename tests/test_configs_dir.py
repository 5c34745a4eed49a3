"""Every shipped experiment file loads, validates and finds its data: no config in configs/ can rot."""

from __future__ import annotations

import pytest
from conftest import REPO

from lstm_ray.config import load_config
from lstm_ray.data.dataset import prepare_dataset, window_settings

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_configs_directory_is_not_empty():
    assert CONFIGS, "configs/ holds no experiment files"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates_with_its_data(path):
    cfg = load_config(path)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    assert all(len(w["train"]) > 0 for w in data.by_setting.values())
