"""The search-space DSL: distributions, conditional `when`, and every invalid search set-up caught by the config."""

from __future__ import annotations

import pytest

from lstm_ray.config import parse_config
from lstm_ray.config.space import active_params, parse_distribution, resolve_fixed_conditions
from lstm_ray.errors import ConfigError

LAYERS_AND_DROPOUT = {
    "model.num_layers": {"choice": [1, 2]},
    "model.dropout": {"uniform": [0.0, 0.3], "when": {"model.num_layers": 2}},
}


def test_when_makes_a_dimension_conditional():
    dist = parse_distribution("k", {"uniform": [0.0, 0.3], "when": {"model.head": ["attention", "mean"]}})
    assert dist.when == (("model.head", ("attention", "mean")),)
    assert dist.is_active({"model.head": "mean"}) and not dist.is_active({"model.head": "last"})


def test_active_params_drops_inactive_values():
    space = {p: parse_distribution(p, s) for p, s in LAYERS_AND_DROPOUT.items()}
    assert active_params(space, {"model.num_layers": 1, "model.dropout": 0.2}) == {"model.num_layers": 1}


def test_conditions_on_fixed_values_are_decided_before_the_sweep():
    space = {
        "model.bidirectional": parse_distribution("b", {"choice": [False, True], "when": {"data.task": "forecast"}}),
        "model.dropout": parse_distribution("d", {"uniform": [0, 0.3], "when": {"data.task": "classify"}}),
    }
    resolved = resolve_fixed_conditions(space, {"data.task": "forecast"})
    assert list(resolved) == ["model.bidirectional"] and resolved["model.bidirectional"].when == ()


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (
            {
                "algorithm": "grid",
                "space": {"model.hidden_size": {"grid": [4, 8]}},
                "points_to_evaluate": [{"model.hidden_size": 4}],
            },
            "search.points_to_evaluate[0]: grid search",
        ),
        ({"max_trials": 0}, "search.max_trials: must be >= 1"),
        (
            {"scheduler": "pbt", "algorithm": "hyperopt", "space": {"train.lr": {"uniform": [0.001, 0.01]}}},
            "search.scheduler: pbt",
        ),
        (
            {"scheduler": "pbt", "algorithm": "random", "space": {"model.hidden_size": {"choice": [4, 8]}}},
            "search.space: pbt needs a dimension it can change",
        ),
        (
            {
                "scheduler": "pbt",
                "algorithm": "random",
                "perturbation_interval": 2,
                "space": {"train.lr": {"uniform": [0.001, 0.01]}},
            },
            "search.perturbation_interval: must be below",
        ),
        (
            {"algorithm": "optuna", "space": {"model.hidden_size": {"grid": [4, 8]}}},
            "search.space.model.hidden_size: grid dimensions cannot be mixed with optuna",
        ),
        ({"time_budget": "ten minutes"}, "search.time_budget: expected seconds or a duration"),
        ({"stop": {"val_acc": 0.5}}, "search.stop.val_acc: forecast trials report"),
        ({"warm_start": ["earlier"], "algorithm": "random"}, "search.warm_start: random search does not learn"),
        ({"reevaluate": {"top_k": 0}}, "search.reevaluate.top_k: must be >= 1"),
        ({"max_t": 5}, "search.max_t: must be <= train.max_epochs"),
        ({"brackets": 2, "scheduler": "median"}, "search.brackets: only asha has brackets"),
        (
            {"space": LAYERS_AND_DROPOUT | {"model.dropout": {"uniform": [0, 0.3], "when": {"model.num_layers": 3}}}},
            "search.space.model.dropout.when.model.num_layers: 3 is not one of the searched values",
        ),
        (
            {"space": {"model.dropout": {"uniform": [0, 0.3], "when": {"model.nope": 1}}}},
            "search.space.model.dropout.when.model.nope: 'model.nope' names no config field",
        ),
        (
            {"space": {"model.dropout": {"uniform": [0, 0.3], "when": {"model.cell": "lsmt"}}}},
            "search.space.model.dropout.when.model.cell: value 'lsmt' is not valid",
        ),
        (
            {
                "algorithm": "grid",
                "space": {
                    "model.hidden_size": {"grid": [4, 8]},
                    "model.dropout": {"grid": [0, 0.3], "when": {"model.hidden_size": 8}},
                },
            },
            "search.space.model.dropout.when: a grid cannot skip combinations",
        ),
        (
            {"space": LAYERS_AND_DROPOUT, "points_to_evaluate": [{"model.num_layers": 1, "model.dropout": 0.1}]},
            "search.points_to_evaluate[0].model.dropout: is inactive",
        ),
        (
            {"space": LAYERS_AND_DROPOUT, "points_to_evaluate": [{"model.num_layers": 2}]},
            "search.points_to_evaluate[0]: misses model.dropout",
        ),
        (
            {"space": {"train.lr": {"loguniform": [0.001, 0.01]}}, "points_to_evaluate": [{"train.lr": 0.5}]},
            "search.points_to_evaluate[0].train.lr: 0.5 lies outside the searched loguniform",
        ),
    ],
)
def test_invalid_search_set_ups_name_the_key(tiny_raw, search, expected):
    tiny_raw["train"]["max_epochs"] = 2
    tiny_raw["search"] |= search
    with pytest.raises(ConfigError) as caught:
        parse_config(tiny_raw)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_budgets_and_reevaluation_parse(tiny_raw):
    tiny_raw["search"] |= {
        "time_budget": "30m",
        "max_trials": 5,
        "stop": {"val_rmse": 0.5},
        "reevaluate": {"top_k": 2, "seeds": 3},
        "warm_start": ["quickstart"],
    }
    search = parse_config(tiny_raw).search
    assert search.time_budget_s == 1800 and search.max_trials == 5 and search.stop == {"val_rmse": 0.5}
    assert (search.reevaluate.top_k, search.reevaluate.seeds) == (2, 3)
