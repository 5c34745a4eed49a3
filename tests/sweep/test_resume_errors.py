"""Bad input to `lstm-ray resume` and `lstm-ray report`, and the storage and tracking settings a sweep would trip over
once Ray runs: each is one `error: KEY: ...` line and exit 2, before Ray."""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from cli_runs import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.cli import main
from lstm_ray.config import parse_config
from lstm_ray.config.rules import MAX_NAME_BYTES, STORAGE_SCHEMES
from lstm_ray.errors import ConfigError
from lstm_ray.storage import INFO_FILE, find_sweep, load_resume_info, save_resume_info, sweep_folder_name
from lstm_ray.sweep.reevaluate import PHASE

FIXTURES = [HealthCheck.function_scoped_fixture]


def error_line(capsys, *argv: str) -> str:
    """`lstm-ray ARGV` in this process: exit 2 and one error line on stderr; that line."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


# --- resume and report: what names the sweep and where it is ---------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True)
SCHEMES = st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True).filter(lambda s: s not in STORAGE_SCHEMES)


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(name=NAMES)
def test_resuming_a_name_with_no_sweep_is_one_error_line(capsys, tmp_path, name):
    line = error_line(capsys, "resume", name, "--storage", str(tmp_path))
    assert line.startswith(f"error: NAME_OR_PATH: {name!r} is neither a sweep folder nor the name"), line


def test_reporting_an_experiment_with_no_sweep_is_one_error_line(tmp_path):
    done = run_cli("report", "nothing-here", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 2, done.stderr[-3000:]  # and run_cli's marker
    assert done.stderr.startswith("error: NAME: no MLflow experiment 'nothing-here'"), done.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(scheme=SCHEMES, where=st.sampled_from(["folder", "--storage"]))
def test_an_unknown_uri_scheme_is_one_error_line(capsys, scheme, where):
    uri = f"{scheme}://bucket/results"
    argv = ["resume", uri] if where == "folder" else ["resume", "tiny", "--storage", uri]
    key = "NAME_OR_PATH" if where == "folder" else "--storage"
    assert error_line(capsys, *argv).startswith(f"error: {key}: '{uri}' has an unknown scheme {scheme}://")
    if where == "--storage":
        assert error_line(capsys, "report", "tiny", "--storage", uri).startswith(f"error: --storage: '{uri}' has")


FILE_NAMES = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=30).filter(
    lambda n: n not in (".", "..")
)


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(name=FILE_NAMES, flag=st.sampled_from([("resume", "--storage"), ("report", "--storage"), ("report", "--out")]))
def test_a_flag_naming_an_existing_file_is_one_error_line(capsys, name, flag):
    command, option = flag
    with tempfile.TemporaryDirectory() as folder:
        existing = Path(folder, name)
        existing.write_text("not a folder")
        line = error_line(capsys, command, "tiny", option, str(existing))
    assert line.startswith(f"error: {option}: ") and "is a file, not a folder" in line, line


# --- a sweep folder whose lstm-ray-sweep.json was cut short ----------------------------------------------------


def saved_info(storage: str, tiny_config) -> Path:
    save_resume_info(storage, "tiny-20260101-000000", tiny_config, "run-1")
    return Path(storage, "tiny-20260101-000000", INFO_FILE)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_a_truncated_sweep_file_is_a_config_error(tiny_config, data):
    with tempfile.TemporaryDirectory() as storage:
        info = saved_info(storage, tiny_config)
        whole = info.read_bytes()
        info.write_bytes(whole[: data.draw(st.integers(0, len(whole) - 1), label="kept bytes")])
        with pytest.raises(ConfigError, match=r"^NAME_OR_PATH: .*lstm-ray-sweep.json is truncated or incomplete"):
            load_resume_info(str(info.parent))


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(dropped=st.sets(st.sampled_from(["config", "parent_run_id", "cwd"]), min_size=1))
def test_a_sweep_file_missing_keys_is_a_config_error(tiny_config, dropped):
    with tempfile.TemporaryDirectory() as storage:
        info = saved_info(storage, tiny_config)
        whole = json.loads(info.read_text())
        info.write_text(json.dumps({k: v for k, v in whole.items() if k not in dropped}))
        with pytest.raises(ConfigError, match="truncated or incomplete"):
            load_resume_info(str(info.parent))


def test_resuming_a_truncated_sweep_is_one_error_line_before_ray(tiny_config, tmp_path):
    info_file = saved_info(str(tmp_path), tiny_config)
    info_file.write_bytes(info_file.read_bytes()[:100])
    done = run_cli("resume", str(info_file.parent), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines()[1:] == ["NO_RAY"], done.stderr[-3000:]
    assert done.stderr.startswith(f"error: NAME_OR_PATH: {info_file} is truncated or incomplete")
    assert find_sweep("tiny", str(tmp_path)) == str(info_file.parent)  # still found: only reading it fails


# --- what `lstm-ray tune` met only after Ray started ------------------------------------------------------------

NAME_CHARS = st.lists(st.sampled_from(["a", "z", "é", "ß", "€", "中", "😀", "𝄞"]), min_size=1, max_size=260)


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
@given(chars=NAME_CHARS, target=st.integers(MAX_NAME_BYTES - 12, MAX_NAME_BYTES + 12))
def test_a_name_is_refused_exactly_when_its_folders_exceed_255_bytes(tmp_path, tiny_raw, chars, target):
    """Names of multi-byte characters whose UTF-8 length lands around the limit: the config accepts a name exactly
    when the longest folder a sweep names after it (`<name>-<timestamp>-reevaluation`) can be made on this disk."""
    name = ""
    for char in chars:
        if len((name + char).encode()) > target:
            break
        name += char
    try:
        cfg = parse_config(tiny_raw | {"name": name})
    except ConfigError as err:
        assert err.key == "name" and f"{len(name.encode())} bytes" in str(err), str(err)
        with pytest.raises(OSError):
            os.mkdir(tmp_path / f"{name}-20261123-191407-{PHASE}")
    else:
        longest = tmp_path / f"{sweep_folder_name(cfg)}-{PHASE}"
        longest.mkdir()
        longest.rmdir()


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(name=FILE_NAMES)
def test_a_storage_path_naming_an_existing_file_is_refused(tiny_raw, name):
    with tempfile.TemporaryDirectory() as folder:
        existing = Path(folder, name)
        existing.write_bytes(b"")
        for path in (str(existing), f"file://{existing}"):
            with pytest.raises(ConfigError, match="is a file, not a folder") as err:
                parse_config(tiny_raw | {"storage": {"path": path}})
            assert err.value.key == "storage.path"
        parse_config(tiny_raw | {"storage": {"path": folder}})  # a folder is what it takes


@settings(max_examples=40, deadline=None)
@given(
    uri=st.one_of(
        st.from_regex(r"file:(//)?/?[a-z_]{1,10}(/[a-z_.]{1,10}){0,3}", fullmatch=True),
        st.from_regex(r"(\./|/)?[a-z_]{1,10}(/[a-z_.]{1,10}){0,3}", fullmatch=True).filter(
            lambda u: u not in ("databricks", "uc")
        ),
    )
)
def test_a_file_store_tracking_uri_is_refused_with_the_sqlite_fix(uri):
    from conftest import TINY

    with pytest.raises(ConfigError, match=r"sqlite:///path/mlflow.db") as err:
        parse_config(TINY | {"tracking": {"uri": uri}})
    assert err.value.key == "tracking.uri"
    parse_config(TINY | {"tracking": {"uri": uri, "enabled": False}})  # no MLflow: nothing to refuse


def test_the_stores_mlflow_3_writes_to_are_accepted(tiny_raw):
    for uri in ("sqlite:///mlflow.db", "sqlite:////srv/mlflow.db", "http://127.0.0.1:5000", "databricks"):
        assert parse_config(tiny_raw | {"tracking": {"uri": uri}}).tracking.uri == uri


@pytest.mark.parametrize(
    ("override", "start"),
    [
        ("storage.path=FILE", "error: storage.path: "),
        ("name=" + "€" * 80, "error: name: "),
        ("tracking.uri=file:///srv/mlruns", "error: tracking.uri: "),
    ],
)
def test_tune_refuses_them_before_ray(tmp_path, tiny_raw, override, start):
    (tmp_path / "FILE").write_text("")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_raw, allow_unicode=True))
    done = run_cli("tune", str(config), "--set", override.replace("FILE", str(tmp_path / "FILE")), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines()[1:] == ["NO_RAY"], done.stderr[-3000:]
    assert done.stderr.startswith(start), done.stderr
