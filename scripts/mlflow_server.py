#!/usr/bin/env python3
"""Start a real MLflow tracking server for lstm-ray sweeps; the server also proxies artifacts.

    python scripts/mlflow_server.py                           # SQLite + local artifacts under ./mlflow-server
    python scripts/mlflow_server.py --host 0.0.0.0 --port 5000 --allowed-hosts "head:5000,10.0.0.5:5000"
    python scripts/mlflow_server.py \
        --backend-store-uri postgresql+psycopg://mlflow:PASSWORD@db:5432/mlflow \
        --artifacts-destination s3://my-bucket/mlflow             # shared DB and bucket for a cluster
    python scripts/mlflow_server.py --detach --pidfile mlflow.pid # waits until healthy, prints the PID, returns

Then set `tracking.uri: http://HOST:PORT` in the experiment file (or `--set tracking.uri=...`). Trials on
every node log through this one server: artifacts go through it too (`--serve-artifacts`), so only the server
needs the bucket's credentials. PostgreSQL needs `pip install "psycopg[binary]"` (SQLAlchemy 2.1 takes
`postgresql://` as psycopg 3) and a bucket needs its client (`boto3` for s3://, `google-cloud-storage` for
gs://), on the server's machine only.

The server runs with one worker and MLflow's job runner off (~500 MiB instead of ~2.6 GiB). It runs in the
foreground by default, as this process (stop it with Ctrl-C or by its PID); `--detach` starts it in its own
process group (stop it with `kill -TERM -PID`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = server_command(args)
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
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
    print(f"MLflow tracking server at {url} (PID {process.pid}); stop it with: kill -TERM -{process.pid}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start an MLflow tracking server for lstm-ray sweeps.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: reachable by the cluster)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--root", default="mlflow-server", help="folder of the default SQLite file and artifacts")
    parser.add_argument("--backend-store-uri", help="runs and registry: default sqlite:///ROOT/mlflow.db")
    parser.add_argument("--artifacts-destination", help="where proxied artifacts land: default ROOT/artifacts")
    parser.add_argument("--allowed-hosts", help="Host headers accepted (comma-separated), e.g. head:5000")
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
    return command


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
