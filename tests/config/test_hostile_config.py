"""Hostile config input, generated: keys YAML reads as numbers or null, unknown tracking schemes, booleans that
Python counts as 1, keys given twice in a --set value, alias bombs, huge choice lists and huge values quoted in
errors. Each is one `error: KEY: ...` line of readable length and exit 2 before Ray, in seconds.

    scripts/loopback-only .venv/bin/python -m pytest tests/config/test_hostile_config.py -q -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.cli import main
from lstm_ray.config import parse_config
from lstm_ray.config.loading import MAX_ALIAS_EXPANSION
from lstm_ray.config.rules import TRACKING_SCHEMES
from lstm_ray.errors import shown

LSTM_RAY = Path(sys.executable).with_name("lstm-ray")
MAX_LINE = 400  # characters of an error line, `error: ` included
BASE = {
    "name": "hostile",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 8, "horizon": 2},
    "model": {"hidden_size": 8},
    "train": {"max_epochs": 2},
    "search": {"num_samples": 2, "algorithm": "random", "space": {"train.lr": {"uniform": [1.0e-3, 1.0e-2]}}},
}
FAST = settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
ONCE = settings(SLOW, max_examples=1)

names = st.from_regex(r"[a-z][a-z_]{2,9}", fullmatch=True).filter(lambda w: yaml.safe_load(w) == w)  # not `null`
not_text_keys = (
    st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none() | st.lists(st.integers(), max_size=2)
)


def flow(value) -> str:
    """`value` as one line of YAML flow syntax, as a user writes it after `--set KEY=`."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("\n...")


def with_set(raw: dict, key: str, value) -> dict:
    """A copy of `raw` with the dotted `key` set (search.space.PATH keeps PATH whole), as --set does."""
    raw = copy.deepcopy(raw)
    if key.startswith("search.space."):
        raw["search"]["space"][key.removeprefix("search.space.")] = value
        return raw
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


def validate(tmp: Path, text: str, *flags: str) -> tuple[int, str, str]:
    """`lstm-ray validate` (in process) on a config file holding `text`, with --set `flags`."""
    path = tmp / "experiment.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    argv = ["validate", str(path), *[arg for flag in flags for arg in ("--set", flag)]]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def validate_in_subprocess(tmp: Path, text: str, *flags: str, timeout: float = 60) -> tuple[int, str, str]:
    """The real `lstm-ray validate`, killed (and the test failed) when it outlives `timeout` seconds."""
    path = tmp / "experiment.yaml"
    path.write_text(text)
    argv = [str(LSTM_RAY), "validate", str(path), *[arg for flag in flags for arg in ("--set", flag)]]
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def assert_error_line(result: tuple[int, str, str], key: str, *says: str) -> str:
    code, out, err = result
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err[:2000])
    assert lines[0].startswith(f"error: {key}: ") and len(lines[0]) <= MAX_LINE, lines[0]
    assert "Traceback" not in err and all(word in lines[0] for word in says), lines[0]
    return lines[0]


def through_file_or_set(data: st.DataObject, key: str, value) -> tuple[str, list[str]]:
    """The config text and --set flags that give `key` the value `value`: in the file, or through a flag."""
    if data.draw(st.booleans(), label="through --set"):
        return yaml.safe_dump(BASE, sort_keys=False), [f"{key}={flow(value)}"]
    return yaml.safe_dump(with_set(BASE, key, value), sort_keys=False), []


# --- keys that are not text -----------------------------------------------------------------------------------


@FAST
@given(
    data=st.data(),
    key=not_text_keys.filter(lambda k: not isinstance(k, list)),
    where=st.sampled_from(["search.space", "search.stop", "search.points_to_evaluate"]),
)
def test_a_key_that_is_not_text_is_one_error_line(tmp_path_factory, data, key, where):
    entry = {key: {"choice": [1, 2]}} if where == "search.space" else {key: 1.0}
    value = [entry] if where == "search.points_to_evaluate" else entry
    text, flags = through_file_or_set(data, where, value)
    expected = f"{where}[0]" if where == "search.points_to_evaluate" else where
    assert_error_line(validate(tmp_path_factory.mktemp("k"), text, *flags), expected, "is not text")


# --- tracking URIs --------------------------------------------------------------------------------------------


def base_scheme(scheme: str) -> str:
    return scheme.lower().split("+")[0]


unknown_schemes = st.from_regex(r"[A-Za-z][A-Za-z0-9+.-]{1,12}", fullmatch=True).filter(
    lambda s: base_scheme(s) not in (*TRACKING_SCHEMES, "file", "")
)


@FAST
@given(data=st.data(), scheme=unknown_schemes, rest=st.sampled_from(["//host:5000", "///x.db", "x", "//u@h/db"]))
def test_an_unknown_tracking_scheme_is_refused_naming_the_accepted_ones(tmp_path_factory, data, scheme, rest):
    text, flags = through_file_or_set(data, "tracking.uri", f"{scheme}:{rest}")
    line = assert_error_line(validate(tmp_path_factory.mktemp("u"), text, *flags), "tracking.uri")
    assert "http, https, sqlite, postgresql" in line and shown(base_scheme(scheme)) in line


@FAST
@given(
    scheme=st.sampled_from(TRACKING_SCHEMES),
    driver=st.sampled_from(["", "+psycopg2", "+pymysql"]),
    upper=st.booleans(),
)
def test_every_scheme_mlflow_has_a_store_for_is_accepted(scheme, driver, upper):
    uri = f"{scheme.upper() if upper else scheme}{driver}://user@host:5000/db"
    assert parse_config(with_set(BASE, "tracking.uri", uri)).tracking.uri == uri


def test_a_file_uri_meets_its_own_message_not_the_scheme_one(tmp_path):
    line = assert_error_line(
        validate(tmp_path, yaml.safe_dump(BASE), "tracking.uri=file:///tmp/mlruns"), "tracking.uri"
    )
    assert "file store" in line and "no store for" not in line


# --- `when` values of another type ----------------------------------------------------------------------------


numeric_parent = st.tuples(
    st.just("model.num_layers"), st.lists(st.integers(1, 4), min_size=1, max_size=4, unique=True), st.booleans()
)
boolean_parent = st.tuples(
    st.just("model.bidirectional"),
    st.sampled_from([[True], [False], [True, False]]),
    st.sampled_from([0, 1, 0.0, 1.0]),
)


@FAST
@given(data=st.data(), parent=numeric_parent | boolean_parent, as_list=st.booleans())
def test_a_boolean_when_value_never_matches_a_number_nor_a_number_a_boolean(tmp_path_factory, data, parent, as_list):
    path, choices, value = parent
    space = BASE["search"]["space"] | {
        path: {"choice": choices},
        "model.dropout": {"uniform": [0.0, 0.3], "when": {path: [value] if as_list else value}},
    }
    text, flags = through_file_or_set(data, "search.space", space)
    line = assert_error_line(
        validate(tmp_path_factory.mktemp("w"), text, *flags), f"search.space.model.dropout.when.{path}"
    )
    assert f"searched values {choices}" in line


@FAST
@given(choices=st.lists(st.integers(1, 4), min_size=1, max_size=4, unique=True), data=st.data())
def test_a_when_value_as_a_float_matches_the_same_whole_number(choices, data):
    value = float(data.draw(st.sampled_from(choices)))
    space = {
        "model.num_layers": {"choice": choices},
        "model.dropout": {"uniform": [0.0, 0.3], "when": {"model.num_layers": value}},
    }
    parse_config(with_set(BASE, "search.space", space))


# --- keys given twice in a --set value ------------------------------------------------------------------------


@FAST
@given(
    data=st.data(),
    keys=st.lists(names, min_size=1, max_size=5, unique=True),
    values=st.lists(st.integers(0, 99), min_size=6, max_size=6),
    depth=st.integers(0, 3),
)
def test_a_key_given_twice_in_a_set_value_is_refused_as_in_a_file(tmp_path_factory, data, keys, values, depth):
    repeated = data.draw(st.sampled_from(keys), label="repeated")
    pairs = [f"{key}: {value}" for key, value in zip([*keys, repeated], values, strict=False)]
    text = "{" + ", ".join(data.draw(st.permutations(pairs), label="order")) + "}"
    for level in range(depth):  # the repeat may hide in a nested mapping
        text = f"{{level{level}: {text}}}"
    line = assert_error_line(validate(tmp_path_factory.mktemp("d"), yaml.safe_dump(BASE), f"model={text}"), "model")
    assert f"key {repeated!r} appears twice" in line


def test_a_key_given_twice_in_a_file_is_still_refused(tmp_path):
    text = yaml.safe_dump(BASE) + "tracking:\n  top_k: 2\n  top_k: 3\n"
    assert_error_line(validate(tmp_path, text), str(tmp_path / "experiment.yaml"), "'top_k' appears twice")


# --- alias bombs ----------------------------------------------------------------------------------------------


def alias_bomb(depth: int, width: int) -> str:
    """A flow list whose item k anchors `width` aliases of item k-1: the last expands to width**(depth + 1) values."""
    levels = [f"&l0 [{', '.join(['lol'] * width)}]"]
    levels += [f"&l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, depth + 1)]
    return f"[{', '.join(levels)}]"


bombs = st.tuples(st.integers(4, 12), st.integers(3, 12)).filter(lambda b: b[1] ** b[0] > 4 * MAX_ALIAS_EXPANSION)


@SLOW
@given(data=st.data(), bomb=bombs, where=st.sampled_from(["search.stop", "search.points_to_evaluate"]))
def test_an_alias_bomb_is_refused_in_seconds_as_one_short_line(tmp_path_factory, data, bomb, where):
    value = alias_bomb(*bomb)
    entry = f"{{val_rmse: {value}}}" if where == "search.stop" else f"[{{train.lr: {value}}}]"
    base = yaml.safe_dump(BASE, sort_keys=False)
    if data.draw(st.booleans(), label="through --set"):
        text, flags, key = base, [f"{where}={entry}"], where
    else:
        text, flags = base.replace("search:\n", f"search:\n  {where.split('.')[1]}: {entry}\n"), []
        key = None
    tmp = tmp_path_factory.mktemp("b")
    line = assert_error_line(validate_in_subprocess(tmp, text, *flags), key or str(tmp / "experiment.yaml"))
    assert f"*l{bomb[0] - 1}" in line and "aliases" in line


def test_a_value_that_contains_itself_is_refused(tmp_path):
    line = assert_error_line(validate(tmp_path, yaml.safe_dump(BASE), "data.lags=&x [1, *x]"), "data.lags")
    assert "*x lies inside its own anchor &x" in line


def test_aliases_that_repeat_a_little_still_load(tmp_path):
    point = "&p {train.lr: 0.005}"
    text = yaml.safe_dump(BASE, sort_keys=False).replace(
        "search:\n", f"search:\n  points_to_evaluate: [{point}, *p, *p]\n"
    )
    code, out, err = validate(tmp_path, text)
    assert code == 0 and out.startswith("OK: hostile"), err


# --- huge values ----------------------------------------------------------------------------------------------


@ONCE
@given(count=st.integers(5_000, 20_000), start=st.integers(1, 1_000), points=st.integers(0, 50))
def test_a_choice_of_thousands_of_values_validates_in_seconds(tmp_path_factory, count, start, points):
    raw = with_set(BASE, "search.space.model.hidden_size", {"choice": list(range(start, start + count))})
    raw["search"]["points_to_evaluate"] = [{"model.hidden_size": start + i, "train.lr": 0.005} for i in range(points)]
    code, out, err = validate_in_subprocess(tmp_path_factory.mktemp("c"), yaml.safe_dump(raw), timeout=60)
    assert code == 0 and out.startswith("OK: hostile"), err[-2000:]


@FAST
@given(
    data=st.data(),
    key=st.sampled_from(["data.lookback", "model.dropout", "search.stop", "train.optimizer", "name"]),
    huge=st.text(min_size=500, max_size=3000) | st.lists(st.integers(), min_size=300, max_size=1000),
)
def test_an_error_quoting_a_huge_value_stays_one_short_line(tmp_path_factory, data, key, huge):
    text, flags = through_file_or_set(data, key, huge)
    assert_error_line(validate(tmp_path_factory.mktemp("h"), text, *flags), key)


@FAST
@given(word=st.text("abcdefghijklmnopqrstuvwxyz", min_size=400, max_size=2000))
def test_an_error_naming_a_huge_key_is_cut_to_one_short_line(tmp_path_factory, word):
    code, out, err = validate(tmp_path_factory.mktemp("n"), yaml.safe_dump(BASE), f"model.{word}=1")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: model.{word[:100]}") and len(err.strip()) <= MAX_LINE


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=200,
    )
)
def test_a_shown_value_is_short_and_plain_values_keep_their_repr(value):
    assert len(shown(value)) <= 100
    if isinstance(value, bool | float | None) or (isinstance(value, int | str) and len(repr(value)) <= 40):
        assert shown(value) == repr(value)
