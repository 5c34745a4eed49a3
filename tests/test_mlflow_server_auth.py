"""`scripts/mlflow_server.py` with MLflow's basic-auth app: a write without credentials is refused (401), one with
the admin's succeeds; a server on a non-loopback host does not start without an admin password.

The server runs on 127.0.0.1 with `--auth` (auth is on by default only off loopback) and is stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow_server_process import free_port

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "mlflow_server.py"
spec = importlib.util.spec_from_file_location("mlflow_server", SCRIPT)
mlflow_server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mlflow_server)

non_loopback_ipv4 = st.ip_addresses(v=4).filter(lambda ip: not ip.is_loopback).map(str)
host_names = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,6}){0,2}", fullmatch=True).filter(
    lambda h: h != "localhost"
)


def create_experiment(url: str, name: str, login: tuple[str, str] | None = None) -> int:
    """The HTTP status of the REST call creating experiment `name`, as `login` (user, password) or anonymously."""
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/experiments/create",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    if login:
        token = base64.b64encode(":".join(login).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
def test_writes_need_the_admin_login_with_auth_on(tmp_path):
    password = "correct-horse-battery-staple"
    (tmp_path / "password").write_text(password + "\n")
    port, pidfile = free_port(), tmp_path / "mlflow.pid"
    log = tmp_path / "script.log"
    with log.open("w") as out:  # a file, not a pipe: the detached server keeps what it inherits open
        code = subprocess.call(
            [sys.executable, str(SCRIPT), "--auth", "--port", str(port), "--root", str(tmp_path / "server"),
             "--detach", "--pidfile", str(pidfile), "--admin-password-file", str(tmp_path / "password")],
            stdout=out, stderr=subprocess.STDOUT, timeout=200,
        )  # fmt: skip
    printed = log.read_text()
    assert code == 0, printed
    pid = int(pidfile.read_text())
    try:
        url = f"http://127.0.0.1:{port}"
        assert "basic auth" in printed and password not in printed
        assert create_experiment(url, "anonymous") == 401
        assert create_experiment(url, "wrong", ("admin", "not-the-password")) == 401
        assert create_experiment(url, "admin's", ("admin", password)) == 200
    finally:
        os.killpg(pid, signal.SIGTERM)
    assert password not in (tmp_path / "server" / "basic_auth.ini").read_text()


def refusal(argv: list[str], password: str | None) -> str:
    """What the script prints on stderr for `argv` with the admin-password variable set to `password` (or unset),
    after checking that it refused to start (exit 2)."""
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        if password is None:
            patch.delenv(mlflow_server.PASSWORD_VARIABLE, raising=False)
        else:
            patch.setenv(mlflow_server.PASSWORD_VARIABLE, password)
        assert mlflow_server.main([*argv, "--root", "/nonexistent/never-made"]) == 2
    err = stderr.getvalue().strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@given(st.one_of(non_loopback_ipv4, host_names))
def test_a_non_loopback_host_without_a_password_is_refused(host):
    assert mlflow_server.PASSWORD_VARIABLE in refusal(["--host", host], None)


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=11).map(str.strip))
def test_an_admin_password_shorter_than_mlflows_minimum_is_refused(password):
    assert "at least 12" in refusal(["--host", "0.0.0.0"], password) or not password


@given(st.sampled_from(["127.0.0.1", "127.8.9.10", "::1", "localhost"]))
def test_auth_is_off_by_default_on_loopback_only(host):
    assert not mlflow_server.auth_enabled(mlflow_server.parse_args(["--host", host]))
    assert mlflow_server.auth_enabled(mlflow_server.parse_args(["--host", host, "--auth"]))
    assert mlflow_server.auth_enabled(mlflow_server.parse_args(["--host", "0.0.0.0"]))
