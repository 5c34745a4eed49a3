"""Scale: a many-trial sweep of a cheap trainable on a simulated multi-node cluster, with TPE + ASHA.

The cluster is real Ray (a head and worker nodes on this machine, scripts/local_cluster.py); each trial sleeps a
fixed time per epoch instead of training, so the sweep measures the service around the trials: wall time against
ideal (epochs x epoch time / slots), the searcher's share of wall time, and the driver's peak memory.

    scripts/loopback-only .venv/bin/python scripts/bench/scale.py                 # 10,000 trials
    scripts/loopback-only .venv/bin/python scripts/bench/scale.py --trials 200 --no-save   # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, save

from lstm_ray.config import parse_config

EPOCH_S = 0.02


def local_cluster_module():
    spec = importlib.util.spec_from_file_location("local_cluster", REPO / "scripts" / "local_cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def cheap_trial(config: dict) -> None:
    """A learning curve that depends on the hyperparameters, one report per 'epoch'."""
    from ray import tune

    quality = abs(config["train.lr"] - 0.01) * 50 + 1.0 / config["model.hidden_size"]
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(EPOCH_S)
        tune.report({"val_rmse": quality + 1.0 / epoch, "epoch": epoch})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    clusters = local_cluster_module()
    state = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    handle = clusters.start_cluster(state / "cluster", workers=args.workers, cpus_per_worker=1, head_cpus=0)
    try:
        os.environ.update(handle.client_env())
        result = run(args, state, handle.gcs_address)
    finally:
        clusters.stop_cluster(handle)
    slots = args.workers
    ideal = result["epochs"] * EPOCH_S / slots
    result |= {"ideal_s": ideal, "wall_over_ideal": result["wall_s"] / ideal, "slots": slots}
    print(
        f"{args.trials} trials, {result['epochs']} epochs in {result['wall_s']:.0f} s (ideal {ideal:.0f} s, "
        f"{result['wall_over_ideal']:.1f}x); searcher {result['searcher_share']:.0%} of wall; "
        f"driver peak RSS {result['driver_peak_rss_mb']:.0f} MB"
    )
    if not args.no_save:
        save(
            "scale",
            {"trials": args.trials, **result},
            f"{args.trials} trials on {slots} worker nodes: {result['wall_over_ideal']:.1f}x ideal, searcher "
            f"{result['searcher_share']:.0%} of wall, driver {result['driver_peak_rss_mb']:.0f} MB",
        )


def run(args: argparse.Namespace, state: Path, address: str) -> dict:
    import ray
    from ray import tune

    from lstm_ray.sweep.tuning import build_param_space, build_scheduler, build_searcher

    cfg = parse_config(
        {
            "name": "bench-scale",
            "data": {"source": "builtin:co2"},
            "train": {"max_epochs": args.epochs},
            "search": {
                "num_samples": args.trials,
                "grace_period": 1,
                "reduction_factor": 2,
                "space": {"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.hidden_size": {"choice": [8, 16, 32]}},
            },
        }
    )
    searcher = build_searcher(cfg)
    spent = {"searcher": 0.0}
    for name in ("suggest", "on_trial_result", "on_trial_complete"):
        setattr(searcher, name, timed(getattr(searcher, name), spent))
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(args.workers)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address=address, log_to_driver=False)
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(cheap_trial, {"cpu": 1}),
        param_space=build_param_space(cfg) | {"epochs": args.epochs},
        tune_config=tune.TuneConfig(
            metric="val_rmse",
            mode="min",
            search_alg=searcher,
            scheduler=build_scheduler(cfg),
            num_samples=args.trials,
            max_concurrent_trials=args.workers,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(state / "results"), verbose=0),
    )
    results = tuner.fit()
    wall = time.perf_counter() - start
    ray.shutdown()
    epochs = sum(int(r.metrics.get("epoch", 0)) for r in results)
    return {
        "wall_s": wall,
        "epochs": epochs,
        "searcher_s": spent["searcher"],
        "searcher_share": spent["searcher"] / wall,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def timed(method, spent: dict):
    """`method` wrapped to add its run time to spent["searcher"]."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent["searcher"] += time.perf_counter() - start

    return wrapper


if __name__ == "__main__":
    main()
