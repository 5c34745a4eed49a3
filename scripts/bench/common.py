"""Shared pieces of the benchmarks: the machine's description, JSON output, and the docs/benchmarks.md table.

Every benchmark runs its baseline in the same process or session and reports ratios, because these machines
are noisy: absolute numbers move from run to run, ratios much less.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "bench-results"
TABLE = REPO / "docs" / "benchmarks.md"


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def command_line() -> str:
    return "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(REPO))] + sys.argv[1:])


def save(name: str, result: dict, summary: str) -> Path:
    """Write the JSON result and add a row to docs/benchmarks.md; returns the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    record = {"benchmark": name, "date": stamp, "command": command_line(), "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    if not TABLE.exists():
        TABLE.write_text(
            "# Benchmarks\n\nRows are appended by the scripts in `scripts/bench/`; each JSON lies in "
            "`docs/bench-results/`.\n\n| date | benchmark | command | machine | result |\n|---|---|---|---|---|\n"
        )
    m = record["machine"]
    with TABLE.open("a") as table:
        table.write(f"| {stamp} | {name} | `{record['command']}` | {m['cpu']}, {m['cores']} cores | {summary} |\n")
    return path
