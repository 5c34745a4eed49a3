"""The Ray that lstm-ray starts in process (no address): what it starts, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Starts the embedded Ray as a sweep does, then lists the idle workers among its own descendants for 4 s
# (Ray prestarts them within a second of the driver connecting when it is allowed to).
PROBE = textwrap.dedent(
    """
    import os, time
    import ray
    from lstm_ray.sweep.tuning import start_ray

    def descendants(root):
        children = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(pid))
        found, todo = [], [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def cmdline(pid):
        try:
            return open(f"/proc/{pid}/cmdline").read()
        except OSError:
            return ""

    start_ray(None, verbose=False)
    idle = set()
    for _ in range(40):
        idle |= {p for p in descendants(os.getpid()) if cmdline(p).startswith("ray::IDLE")}
        time.sleep(0.1)
    raylets = [p for p in descendants(os.getpid()) if "raylet" in cmdline(p)]
    ray.shutdown()
    print(len(raylets), len(idle))
    """
)


def test_the_embedded_ray_starts_no_idle_workers_that_trials_would_not_use():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_prestart_worker_first_driver", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    raylets, idle = map(int, done.stdout.split()[-2:])
    assert raylets == 1  # the probe did see Ray's own processes
    assert idle == 0
