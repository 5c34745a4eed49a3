from __future__ import annotations

import pytest

from lstm_ray.config import ConfigError, apply_override, apply_params, load_config, parse_config


def error_for(raw: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value


def test_defaults_fill_missing_sections(tiny_raw):
    del tiny_raw["model"]
    cfg = parse_config(tiny_raw)
    assert cfg.model.cell == "lstm" and cfg.tracking.uri == "sqlite:///mlflow.db"
    assert cfg.experiment_name == "tiny"


def test_unknown_key_names_the_key_and_suggests_the_fix(tiny_raw):
    tiny_raw["model"]["hiden_size"] = 8
    err = error_for(tiny_raw)
    assert err.key == "model.hiden_size"
    assert "did you mean 'hidden_size'" in str(err)


def test_unknown_section_is_rejected(tiny_raw):
    tiny_raw["modle"] = {}
    assert error_for(tiny_raw).key == "modle"


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("model", "hidden_size", "big", "whole number"),
        ("model", "bidirectional", "yes", "true or false"),
        ("train", "lr", [0.1], "finite number"),
        ("data", "lookback", 2.5, "whole number"),
    ],
)
def test_wrong_types_are_named(tiny_raw, section, key, value, expected):
    tiny_raw[section][key] = value
    err = error_for(tiny_raw)
    assert err.key == f"{section}.{key}" and expected in str(err) and repr(value) in str(err)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("model", "hidden_size", -4),
        ("model", "num_layers", 0),
        ("model", "dropout", 1.0),
        ("model", "dropout", -0.1),
        ("train", "lr", 0.0),
        ("train", "batch_size", 0),
        ("data", "lookback", 0),
        ("data", "val_fraction", 0.0),
        ("resources", "cpu", -1),
    ],
)
def test_out_of_range_values_are_named(tiny_raw, section, key, value):
    tiny_raw[section][key] = value
    err = error_for(tiny_raw)
    assert err.key == f"{section}.{key}" and repr(value) in str(err)


@pytest.mark.parametrize("key", ["target", "features"])
def test_an_empty_column_list_is_an_error_not_the_default(tiny_raw, key):
    tiny_raw["data"][key] = []
    err = error_for(tiny_raw)
    assert err.key == f"data.{key}" and "empty list" in str(err)


def test_unknown_algorithm_and_scheduler_list_valid_names(tiny_raw):
    tiny_raw["search"]["algorithm"] = "bayes"
    assert "'hyperopt'" in str(error_for(tiny_raw))
    tiny_raw["search"]["algorithm"] = "hyperopt"
    tiny_raw["search"]["scheduler"] = "ashaa"
    err = error_for(tiny_raw)
    assert err.key == "search.scheduler" and "did you mean 'asha'" in str(err)


def test_num_samples_below_one(tiny_raw):
    tiny_raw["search"]["num_samples"] = 0
    assert error_for(tiny_raw).key == "search.num_samples"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"choice": []}, "non-empty list"),
        ({"uniform": [0.3, 0.1]}, "must be below high"),
        ({"loguniform": [0, 0.1]}, "low > 0"),
        ({"loguniform": [-1, 0.1]}, "low > 0"),
        ({"uniform": [0.1]}, "takes 2 numbers"),
        ({"quniform": [0.0, 0.5, 0]}, "step q"),
        ({"normal": [0, 1]}, "unknown distribution"),
        ({"uniform": [0.0, 1.5]}, "must be in [0, 1)"),
        ([0.1, 0.2], "expected one distribution"),
    ],
)
def test_bad_distributions_are_explained(tiny_raw, spec, expected):
    tiny_raw["search"]["space"] = {"model.dropout": spec}
    err = error_for(tiny_raw)
    assert err.key == "search.space.model.dropout" and expected in str(err)


def test_search_path_that_names_no_field(tiny_raw):
    tiny_raw["search"]["space"] = {"model.hidden": {"choice": [8, 16]}}
    err = error_for(tiny_raw)
    assert err.key == "search.space.model.hidden" and "did you mean 'hidden_size'" in str(err)


def test_search_path_outside_tunable_sections(tiny_raw):
    tiny_raw["search"]["space"] = {"tracking.uri": {"choice": ["a"]}}
    assert "must start with one of data, model, train" in str(error_for(tiny_raw))


def test_choice_values_are_validated_against_the_field(tiny_raw):
    tiny_raw["search"]["space"] = {"model.cell": {"choice": ["lstm", "transformer"]}}
    err = error_for(tiny_raw)
    assert "'transformer' is not one of" in str(err)


def test_grid_mixed_with_hyperopt(tiny_raw):
    tiny_raw["search"]["space"] = {"model.hidden_size": {"grid": [8, 16]}}
    err = error_for(tiny_raw)
    assert "cannot be mixed with hyperopt" in str(err)
    tiny_raw["search"]["algorithm"] = "grid"
    assert parse_config(tiny_raw).search.algorithm == "grid"


def test_grid_search_needs_finite_dimensions(tiny_raw):
    tiny_raw["search"]["algorithm"] = "grid"
    tiny_raw["search"]["space"] = {"train.lr": {"loguniform": [1e-4, 1e-2]}}
    assert "finite set of values" in str(error_for(tiny_raw))


def test_window_keys_must_be_searched_over_finite_sets(tiny_raw):
    tiny_raw["search"]["space"] = {"data.lookback": {"randint": [4, 16]}}
    assert "built once per value" in str(error_for(tiny_raw))


def test_search_metric_must_be_a_validation_metric(tiny_raw):
    tiny_raw["search"]["metric"] = "train_loss"
    assert error_for(tiny_raw).key == "search.metric"


def test_overrides_set_nested_keys_and_space_entries(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("data: {source: builtin:co2}\n")
    cfg = load_config(
        path,
        ["train.max_epochs=3", "search.num_samples=4", "search.space.train.lr={loguniform: [0.001, 0.01]}"],
    )
    assert cfg.name == "x" and cfg.train.max_epochs == 3 and cfg.search.num_samples == 4
    assert cfg.parsed_space()["train.lr"].kind == "loguniform"


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override({}, "train.max_epochs")


def test_invalid_yaml_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_apply_params_sets_one_trials_values(tiny_config):
    trial = apply_params(tiny_config, {"model.hidden_size": 16, "train.lr": 0.05})
    assert trial.model.hidden_size == 16 and trial.train.lr == 0.05
    assert tiny_config.model.hidden_size == 8


def test_apply_params_checks_the_trials_combination_not_the_space_again(tiny_raw):
    tiny_raw["model"]["hidden_size"] = 32
    tiny_raw["search"]["space"] = {"model.hidden_size": {"choice": [8, 32]}, "model.proj_size": {"choice": [0, 16]}}
    cfg = parse_config(tiny_raw)  # each value is valid with the base config's others
    assert apply_params(cfg, {"model.hidden_size": 8, "model.proj_size": 0}).model.hidden_size == 8
    with pytest.raises(ConfigError, match="model.proj_size: must be below hidden_size 8, got 16"):
        apply_params(cfg, {"model.hidden_size": 8, "model.proj_size": 16})


def test_points_to_evaluate_must_name_searched_paths_with_valid_values(tiny_raw):
    tiny_raw["search"]["space"] = {"train.lr": {"choice": [0.01, 0.1]}}
    tiny_raw["search"]["points_to_evaluate"] = [{"model.hidden_size": 8}]
    assert "is not in search.space" in str(error_for(tiny_raw))
    tiny_raw["search"]["points_to_evaluate"] = [{"train.lr": -1.0}]
    assert error_for(tiny_raw).key == "search.points_to_evaluate[0].train.lr"
