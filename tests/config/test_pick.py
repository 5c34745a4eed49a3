"""search.pick (`lstm-ray tune --pick`): the rule that picks a Pareto front member is parsed, checked against
search.objectives, and every malformed rule is one `error: search.pick: ...` line before Ray starts."""

from __future__ import annotations

import pytest
from cli_runs import run_cli
from hypothesis import given
from hypothesis import strategies as st

from lstm_ray.config import parse_config
from lstm_ray.config.pick import Condition, PickRule, parse_pick
from lstm_ray.errors import ConfigError

RMSE = {"metric": "val_rmse", "mode": "min"}
LATENCY = {"metric": "latency_ms", "mode": "min"}


def _search(tiny_raw, **search):
    tiny_raw["search"] |= {"algorithm": "random", "space": {"model.hidden_size": {"choice": [2, 8]}}} | search
    return tiny_raw


def test_a_rule_reads_as_best_metric_and_conditions():
    rule = parse_pick("lowest val_rmse where latency_ms < 5 and model_parameters>=1e3")
    assert rule == PickRule(
        "lowest", "val_rmse", (Condition("latency_ms", "<", 5.0), Condition("model_parameters", ">=", 1000.0))
    )
    assert str(rule) == "lowest val_rmse where latency_ms < 5 and model_parameters >= 1000"
    assert parse_pick("highest val_rmse") == PickRule("highest", "val_rmse")


def test_a_rule_on_the_objectives_is_accepted(tiny_raw):
    cfg = parse_config(_search(tiny_raw, objectives=[RMSE, LATENCY], pick="lowest val_rmse where latency_ms < 5"))
    assert cfg.search.pick == "lowest val_rmse where latency_ms < 5"


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"pick": "lowest val_rmse"}, "needs search.objectives"),
        ({"objectives": [RMSE, LATENCY], "pick": "lowest val_mae"}, "'val_mae', which is not one of"),
        ({"objectives": [RMSE, LATENCY], "pick": "lowest val_rmse where latncy_ms < 5"}, "did you mean"),
        ({"objectives": [RMSE, LATENCY], "pick": "lowest val_rmse where latency_ms = 5"}, "expected one of <"),
        ({"objectives": [RMSE, LATENCY], "pick": 5}, "expected text"),
        ({"objectives": [RMSE, LATENCY], "pick": "lowest val_rmse", "reevaluate": {"top_k": 2}}, "reevaluate"),
    ],
)
def test_a_bad_rule_names_search_pick(tiny_raw, search, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(_search(tiny_raw, **search))
    assert caught.value.key == "search.pick"


WORDS = ["lowest", "highest", "where", "and", "val_rmse", "latency_ms", "<", "<=", ">", ">=", "=", "==", "=<", "5",
         "-1.5", "1e3", "nan", "inf", "5ms", "best", "or", "not", ",", "(", "'"]  # fmt: skip
rules = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=10).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=10).map("".join),
    st.text(max_size=40),
    st.none() | st.integers() | st.floats() | st.lists(st.text(max_size=3), max_size=3),
)


@given(rules)
def test_any_rule_parses_or_is_refused_naming_search_pick(text):
    try:
        rule = parse_pick(text)
    except ConfigError as err:
        assert err.key == "search.pick" and "grammar:" in str(err) and "\n" not in str(err)
        return
    assert parse_pick(str(rule)) == rule  # what parses prints back as the same rule


metrics = st.sampled_from(["val_rmse", "latency_ms", "model_parameters"])
conditions = st.builds(
    Condition, metrics, st.sampled_from(["<", "<=", ">", ">="]), st.floats(-1e6, 1e6, allow_nan=False)
)


@given(st.builds(PickRule, st.sampled_from(["lowest", "highest"]), metrics, st.tuples(conditions) | st.just(())))
def test_every_well_formed_rule_parses_back(rule):
    parsed = parse_pick(str(rule))
    assert (parsed.best, parsed.metric, [(c.metric, c.op) for c in parsed.conditions]) == (
        rule.best,
        rule.metric,
        [(c.metric, c.op) for c in rule.conditions],
    )
    assert all(
        c.value == pytest.approx(r.value, rel=1e-5) for c, r in zip(parsed.conditions, rule.conditions, strict=True)
    )


@pytest.mark.parametrize(
    "pick", ["lowest val_rmse where latency_ms < 5 ms", "lowest val_rmse where", "highest val_mae", "cheapest"]
)
def test_the_cli_refuses_a_bad_pick_in_one_line_before_ray(tmp_path, pick):
    config = tmp_path / "mo.yaml"
    config.write_text(
        "name: mo\ndata: {source: 'builtin:co2', target: co2}\n"
        "search: {algorithm: random, objectives: [{metric: val_rmse, mode: min}, {metric: latency_ms, mode: min}]}\n"
    )
    done = run_cli("tune", str(config), "--pick", pick)
    assert done.returncode == 2
    error, ray = done.stderr.splitlines()
    assert error.startswith("error: search.pick: ") and "Traceback" not in done.stderr
    assert ray == "NO_RAY"
