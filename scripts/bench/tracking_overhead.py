"""Tracking overhead: the same lstm-ray sweep with MLflow tracking on (SQLite) and off (`tracking.enabled: false`).

The sweep is the throughput benchmark's (16 LSTM/GRU trials on the bundled CO2 series, HyperOpt TPE + ASHA, 2
slots). Runs alternate off / on so that load from anything else on the machine falls on both alike; each run gets
a fresh SQLite store, as a first sweep does. It prints wall time, epochs per second and the time before the first
trial, while trials ran, and after the last one, and the overhead of tracking as a ratio of epochs per second.

    scripts/loopback-only .venv/bin/python scripts/bench/tracking_overhead.py            # about 4 minutes
    scripts/loopback-only .venv/bin/python scripts/bench/tracking_overhead.py --trials 2 --repeats 1 --no-save
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import save
from throughput import experiment, run_lstm_ray

from lstm_ray.config import apply_params
from lstm_ray.data.dataset import prepare_dataset


def one_sweep(trials: int, epochs: int, tracking: bool) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    cfg = apply_params(experiment(trials, epochs, folder), {"tracking.enabled": tracking})
    wall, done, phases = run_lstm_ray(cfg, prepare_dataset(cfg.data))
    if (folder / "mlflow.db").exists() != tracking:
        raise SystemExit(f"tracking.enabled: {str(tracking).lower()} but an MLflow store was written: {not tracking}")
    epochs_done = sum(e for _, e in done)
    return {
        "wall_s": wall,
        "trials": len(done),
        "epochs": epochs_done,
        "epochs_per_s": epochs_done / wall,
        "trial_phase_epochs_per_s": epochs_done / phases["trials_s"],
        **phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="sweeps per setting, alternating off / on")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for setting in ("off", "on"):
            run = one_sweep(args.trials, args.epochs, tracking=setting == "on")
            runs[setting].append(run)
            print(
                f"tracking {setting:3s}: {run['trials']} trials, {run['epochs']} epochs in {run['wall_s']:.1f} s = "
                f"{run['epochs_per_s']:.2f} epochs/s | start {run['start_s']:.1f} s, trials {run['trials_s']:.1f} s "
                f"({run['trial_phase_epochs_per_s']:.2f} epochs/s), end {run['end_s']:.1f} s",
                flush=True,
            )
    median = {
        setting: {key: statistics.median(r[key] for r in rs) for key in ("wall_s", "epochs_per_s", "start_s", "end_s")}
        | {"trial_phase_epochs_per_s": statistics.median(r["trial_phase_epochs_per_s"] for r in rs)}
        for setting, rs in runs.items()
    }
    slowdown = median["off"]["epochs_per_s"] / median["on"]["epochs_per_s"]
    trial_slowdown = median["off"]["trial_phase_epochs_per_s"] / median["on"]["trial_phase_epochs_per_s"]
    print(
        f"tracking on costs {slowdown - 1:+.0%} in epochs/s over the whole sweep ({trial_slowdown - 1:+.0%} while "
        f"trials run); start {median['on']['start_s'] - median['off']['start_s']:+.1f} s, end "
        f"{median['on']['end_s'] - median['off']['end_s']:+.1f} s"
    )
    if not args.no_save:
        save(
            "tracking_overhead",
            {"trials": args.trials, "max_epochs": args.epochs, "runs": runs, "median": median},
            f"tracking on is {slowdown - 1:+.0%} slower in epochs/s over the sweep, {trial_slowdown - 1:+.0%} while "
            f"trials run; +{median['on']['start_s'] - median['off']['start_s']:.1f} s start, "
            f"+{median['on']['end_s'] - median['off']['end_s']:.1f} s end",
        )


if __name__ == "__main__":
    main()
