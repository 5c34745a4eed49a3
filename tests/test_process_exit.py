"""`lstm-ray` ends its process itself (lstm_ray/process_exit.py): its exit code, with every exit handler run, every
non-daemon thread finished and all its output written, as Python's own exit would leave them."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
from lstm_ray.process_exit import exit_with

folder = Path(sys.argv[1])
atexit.register(lambda: (folder / "atexit").write_text("ran"))
threading.Thread(target=lambda: (time.sleep(0.5), (folder / "thread").write_text("done"))).start()
print("no newline at the end", end="")
print("on stderr", end="", file=sys.stderr)
exit_with(3)
"""


def test_the_command_exits_with_its_code_after_its_handlers_threads_and_output(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (done.stdout, done.stderr) == ("no newline at the end", "on stderr")
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "done"


def test_the_installed_command_reports_bad_input_with_exit_2(tmp_path):
    command = [sys.executable, "-m", "lstm_ray.cli", "validate", "no-such.yaml"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr
