"""How the `lstm-ray` command ends: with its exit code, and without native libraries' teardown.

CPython ends a process in two steps. First it joins the threads that are not daemons and runs the `atexit`
functions (Ray's shutdown, logging's flush). Then it finalizes the interpreter and the C++ static destructors.
In the second step, pyarrow's thread pools can abort the process ("terminate called without an active
exception", SIGABRT) after a command has done all its work: apache/arrow#34314, seen once in a CI run of
`lstm-ray validate`. The command therefore takes the first step as CPython would, flushes its output, and leaves
with `os._exit`. A notebook or any other embedding of `cli.main` keeps Python's own exit.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_with(code: int) -> NoReturn:
    """End the process with `code` once the exit handlers have run and its output is written."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)
