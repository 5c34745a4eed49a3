"""search.objectives: a multi-objective sweep's config is accepted, and every malformed one is refused with the
key that is wrong, before Ray starts."""

from __future__ import annotations

import pytest
from cli_runs import run_cli

from lstm_ray.config import parse_config
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.errors import ConfigError

RMSE = {"metric": "val_rmse", "mode": "min"}
SIZE = {"metric": "model_parameters", "mode": "min"}


def _search(tiny_raw, **search):
    tiny_raw["search"] |= {"algorithm": "random", "space": {"model.hidden_size": {"choice": [2, 8]}}} | search
    return tiny_raw


def test_error_against_size_is_accepted_with_random_optuna_and_grid(tiny_raw):
    for algorithm in ("random", "optuna"):
        cfg = parse_config(_search(tiny_raw, objectives=[RMSE, SIZE], algorithm=algorithm))
        assert objective_pairs(cfg) == [("val_rmse", "min"), ("model_parameters", "min")]
    grid = _search(tiny_raw, objectives=[RMSE, SIZE], algorithm="grid", space={"model.hidden_size": {"grid": [2, 8]}})
    assert parse_config(grid).search.objectives == [RMSE, SIZE]


def test_without_objectives_the_search_metric_is_the_only_objective(tiny_config):
    assert objective_pairs(tiny_config) == [("val_rmse", "min")]


@pytest.mark.parametrize(
    ("search", "key", "message"),
    [
        ({"objectives": [RMSE]}, "search.objectives", "two or more"),
        ({"objectives": [RMSE, {"metric": "model_parameters"}]}, "search.objectives[1]", "metric: ..., mode"),
        (
            {"objectives": [RMSE, {"metric": "model_params", "mode": "min"}]},
            "search.objectives[1].metric",
            "model_parameters",
        ),
        ({"objectives": [RMSE, {"metric": "val_mae", "mode": "max"}]}, "search.objectives[1].mode", "mode: min"),
        ({"objectives": [RMSE, RMSE]}, "search.objectives", "twice"),
        ({"objectives": [SIZE, {"metric": "val_mae", "mode": "min"}]}, "search.metric", "one of search.objectives"),
        ({"objectives": [RMSE, SIZE], "algorithm": "hyperopt"}, "search.algorithm", "random or grid or optuna"),
        ({"objectives": [RMSE, SIZE], "scheduler": "hyperband"}, "search.scheduler", "asha or fifo"),
    ],
)
def test_a_malformed_objectives_list_names_the_key(tiny_raw, search, key, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(_search(tiny_raw, **search))
    assert caught.value.key == key


def test_the_cli_refuses_a_bad_objective_in_one_line_before_ray(tmp_path):
    config = tmp_path / "mo.yaml"
    config.write_text(
        "name: mo\ndata: {source: 'builtin:co2', target: co2}\n"
        "search: {algorithm: random, objectives: [{metric: val_rmse, mode: min}, {metric: latency, mode: min}]}\n"
    )
    done = run_cli("validate", str(config))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith("error: search.objectives[1].metric: must be one of")
    assert "NO_RAY" in done.stderr
