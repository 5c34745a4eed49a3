"""Submitting a sweep as a Ray job, the parts that need no cluster: what is refused before anything is sent, the
job's command line, the advice after an auth failure. Submission to a real cluster is in tests/cluster/test_submit.py.
"""

from __future__ import annotations

import shlex
import socket

import pytest
import yaml
from cli_runs import run_cli

from lstm_ray.cluster.jobs import auth_advice, check_cluster_paths, entrypoint, local_store, sqlite_folder
from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError


def cluster_config(tiny_raw: dict, **sections) -> dict:
    raw = tiny_raw | {"tracking": {"uri": "sqlite:////srv/lstm-ray/mlflow.db"}, "storage": {"path": "/mnt/results"}}
    return raw | sections


def test_absolute_paths_and_uris_are_fine_for_a_cluster(tiny_raw):
    check_cluster_paths(parse_config(cluster_config(tiny_raw)))
    check_cluster_paths(
        parse_config(
            cluster_config(
                tiny_raw, tracking={"uri": "http://127.0.0.1:5000"}, storage={"path": "s3://bucket/lstm-ray"}
            )
        )
    )


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        ("storage", {"path": "lstm-ray-results"}, "storage.path"),
        ("tracking", {"uri": "sqlite:///mlflow.db"}, "tracking.uri"),
        ("data", {"source": "data/series.csv"}, "data.source"),
    ],
)
def test_a_relative_path_is_refused_for_a_cluster_naming_the_key(tiny_raw, section, value, key):
    raw = cluster_config(tiny_raw)
    raw[section] = raw.get(section, {}) | value
    with pytest.raises(ConfigError) as err:
        check_cluster_paths(parse_config(raw))
    assert err.value.key == key and "relative" in str(err.value)


def test_local_stores_and_their_folders():
    assert local_store("sqlite:////srv/mlflow.db") == "/srv/mlflow.db"
    assert local_store("sqlite:///mlflow.db") == "mlflow.db"
    assert local_store("file:///srv/mlruns") == "/srv/mlruns"
    assert local_store("http://127.0.0.1:5000") is None and local_store("databricks") is None
    assert sqlite_folder("sqlite:////srv/lstm-ray/mlflow.db") == "/srv/lstm-ray"
    assert sqlite_folder("http://127.0.0.1:5000") is None


def test_the_entrypoint_runs_the_cli_in_the_sqlite_stores_folder_with_the_overrides_quoted():
    argv = ["tune", "my sweep.yaml", "--address", "auto", "--set=train.lr=0.01", "--set=name=a b"]
    command = entrypoint(argv, "/srv/lstm ray")
    setup, cd, run = command.split(" && ")
    assert shlex.split(setup) == ["config=$PWD/my sweep.yaml"]
    assert shlex.split(cd) == ["cd", "/srv/lstm ray"]
    assert shlex.split(run) == [
        "exec", "python", "-m", "lstm_ray.cli", "tune", "$config", "--address", "auto", "--set=train.lr=0.01",
        "--set=name=a b",
    ]  # fmt: skip
    assert shlex.split(entrypoint(argv, None))[:5] == ["exec", "python", "-m", "lstm_ray.cli", "tune"]


def test_auth_advice_names_the_variable_to_set(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH" in auth_advice("http://h:8265", missing=True)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x")
    advice = auth_advice("http://h:8265", missing=False)
    assert "rejected the token from RAY_AUTH_TOKEN" in advice and "unset RAY_AUTH_TOKEN" in advice


@pytest.fixture
def cluster_yaml(tiny_raw, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cluster_config(tiny_raw)))
    return str(path)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["submit", "preflight"])
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.dropout=1.5", "error: model.dropout: must be in [0, 1), got 1.5"),
        ("storage.path=results", "error: storage.path: 'results' is relative"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_ray_or_the_cluster(cluster_yaml, closed_port, command, override, expected):
    done = run_cli(command, cluster_yaml, "--set", override, "--address", f"http://127.0.0.1:{closed_port}")
    lines = [line for line in done.stderr.splitlines() if line != "NO_RAY"]
    assert done.returncode == 2 and lines == [lines[0]] and lines[0].startswith(expected), done.stderr
    assert "NO_RAY" in done.stderr


def test_submit_without_a_dashboard_address_says_which_to_give(cluster_yaml):
    done = run_cli("submit", cluster_yaml, "--address", "auto")
    assert done.returncode == 2
    assert "error: --address: needs the head's dashboard URL, e.g. http://127.0.0.1:8265" in done.stderr


def test_an_unreachable_cluster_is_one_line_exit_2(cluster_yaml, closed_port):
    done = run_cli("submit", cluster_yaml, "--address", f"http://127.0.0.1:{closed_port}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: --address: nothing answers at http://127.0.0.1:{closed_port}" in done.stderr
