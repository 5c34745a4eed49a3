"""`lstm-ray` run as a process of its own, as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from tune_runs import kill_session


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    # Runs main() and then reports whether Ray was imported, to prove no Ray is started for bad input.
    code = (
        "import sys; from lstm_ray.cli import main; from lstm_ray.process_exit import exit_with; "
        "rc = main(sys.argv[1:]); "
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'NO_RAY', file=sys.stderr); exit_with(rc)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def cli(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`lstm-ray ARGS` started in a session of its own (stdout and stderr together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lstm_ray.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    """Wait for `proc`; kill whatever is left of its session (Ray's processes included); return its output."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc.pid)
    return out
