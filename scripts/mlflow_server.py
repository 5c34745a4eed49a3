#!/usr/bin/env python3
"""Start a real MLflow tracking server for lstm-ray sweeps; the server also proxies artifacts.

    python scripts/mlflow_server.py                           # SQLite + local artifacts under ./mlflow-server
    LSTM_RAY_MLFLOW_ADMIN_PASSWORD=... python scripts/mlflow_server.py --host 0.0.0.0 --port 5000 \
        --allowed-hosts "head:5000,10.0.0.5:5000"                # basic auth: on for any non-loopback host
    python scripts/mlflow_server.py \
        --backend-store-uri postgresql+psycopg://mlflow:PASSWORD@db:5432/mlflow \
        --artifacts-destination s3://my-bucket/mlflow             # shared DB and bucket for a cluster
    python scripts/mlflow_server.py --detach --pidfile mlflow.pid # waits until healthy, prints the PID, returns

Then set `tracking.uri: http://HOST:PORT` in the experiment file (or `--set tracking.uri=...`). Trials on
every node log through this one server: artifacts go through it too (`--serve-artifacts`), so only the server
needs the bucket's credentials. PostgreSQL needs `pip install "psycopg[binary]"` (SQLAlchemy 2.1 takes
`postgresql://` as psycopg 3) and a bucket needs its client (`boto3` for s3://, `google-cloud-storage` for
gs://), on the server's machine only.

Authentication: on a host other than loopback the server runs MLflow's basic-auth app (`--app-name basic-auth`;
`pip install "lstm-ray[server]"` brings its Flask-WTF). The admin user (`--admin-username`, default admin) is created
on the first start with the password read from `--admin-password-file` or $LSTM_RAY_MLFLOW_ADMIN_PASSWORD (12+
characters; never a flag, which `ps` would show); later starts keep the user and its password in ROOT/basic_auth.db.
Without a password source the script refuses to start. `--auth` turns auth on for loopback too, `--no-auth` off.
Clients log in through MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (docs/tracking.md).

The server runs with one worker and MLflow's job runner off (~500 MiB instead of ~2.6 GiB). It runs in the
foreground by default, as this process (stop it with Ctrl-C or by its PID); `--detach` starts it in its own
process group (stop it with `kill -TERM -PID`).
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PASSWORD_VARIABLE = "LSTM_RAY_MLFLOW_ADMIN_PASSWORD"
MIN_PASSWORD = 12  # MLflow's rule for every user's password, the admin's included


class BadInput(Exception):
    """A flag or variable the server cannot start with: printed as one `error:` line, exit 2."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | auth_environment(args)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = server_command(args)
    if not args.detach:
        os.execvpe(command[0], command, env)
    process = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    if not wait_healthy(url, process, args.timeout):
        os.killpg(process.pid, 15)
        print(f"error: the MLflow server did not become healthy at {url} within {args.timeout:g} s", file=sys.stderr)
        return 1
    if args.pidfile:
        Path(args.pidfile).write_text(f"{process.pid}\n")
    login = f"; basic auth, admin user {args.admin_username!r}" if auth_enabled(args) else ""
    print(f"MLflow tracking server at {url} (PID {process.pid}{login}); stop it with: kill -TERM -{process.pid}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start an MLflow tracking server for lstm-ray sweeps.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: reachable by the cluster)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--root", default="mlflow-server", help="folder of the default SQLite file and artifacts")
    parser.add_argument("--backend-store-uri", help="runs and registry: default sqlite:///ROOT/mlflow.db")
    parser.add_argument("--artifacts-destination", help="where proxied artifacts land: default ROOT/artifacts")
    parser.add_argument("--allowed-hosts", help="Host headers accepted (comma-separated), e.g. head:5000")
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        help="MLflow's basic-auth app: every request needs a user (default: on unless --host is loopback)",
    )
    parser.add_argument("--admin-username", default="admin", help="with auth: the admin user made on the first start")
    parser.add_argument(
        "--admin-password-file", help=f"with auth: the admin's password (default: ${PASSWORD_VARIABLE})"
    )
    parser.add_argument("--detach", action="store_true", help="start in the background, wait until healthy")
    parser.add_argument("--pidfile", help="with --detach: write the server's PID (its process group) here")
    parser.add_argument("--timeout", type=float, default=120.0, help="with --detach: seconds to wait for health")
    return parser.parse_args(argv)


def server_command(args: argparse.Namespace) -> list[str]:
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", args.host,
        "--port", str(args.port),
        "--workers", "1",
        "--backend-store-uri", args.backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination", args.artifacts_destination or str(root / "artifacts"),
    ]  # fmt: skip
    if args.allowed_hosts:
        command += ["--allowed-hosts", args.allowed_hosts]
    if auth_enabled(args):
        command += ["--app-name", "basic-auth"]
    return command


def auth_enabled(args: argparse.Namespace) -> bool:
    return args.auth if args.auth is not None else not is_loopback(args.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def auth_environment(args: argparse.Namespace) -> dict[str, str]:
    """MLflow's variables for its basic-auth app ({} with auth off): the config file (written into ROOT), the
    admin password and the Flask secret key. Raises BadInput when the password or Flask-WTF is missing."""
    if not auth_enabled(args):
        return {}
    why = f"auth is on for --host {args.host}" if args.auth is None else "--auth is on"
    if args.admin_password_file:
        try:
            password = Path(args.admin_password_file).read_text().strip()
        except OSError as err:
            raise BadInput(f"--admin-password-file: cannot read it ({err.strerror}); name a readable file") from None
    else:
        password = os.environ.get(PASSWORD_VARIABLE, "")
    if not password:
        raise BadInput(f"{why}: the admin user needs a password; pass --admin-password-file FILE or set "
                       f"{PASSWORD_VARIABLE} (or --no-auth behind a proxy that authenticates)")  # fmt: skip
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the admin password has {len(password)} characters; MLflow needs at least {MIN_PASSWORD}")
    if importlib.util.find_spec("flask_wtf") is None:
        raise BadInput(f"{why}: MLflow's auth app needs Flask-WTF; pip install 'lstm-ray[server]'")
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\nadmin_username = {args.admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        # One worker: a key made at each start signs its CSRF tokens; a key already set wins.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32),
    }


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Poll `url`/health until it answers OK; False if the process exits or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


if __name__ == "__main__":
    sys.exit(main())
