"""Checkpoints kept per trial against sweep wall time: `storage.keep_checkpoints` 2, 5 (the default) and all.

Ray Tune snapshots the whole experiment, and uploads every trial's files to storage, each time a trial has
reported `num_to_keep` checkpoints since the last snapshot; lstm-ray's trials checkpoint every epoch. Each
variant runs the same many-trial sweep (TPE + ASHA, a cheap trainable that sleeps 20 ms per epoch and reports
a checkpoint every epoch, as lstm-ray's trainable does) on a local 2-CPU Ray, one after the other in this
process, with lstm-ray's own searcher, scheduler and `checkpoint_config`. It prints wall time against ideal
(epochs x epoch time / slots), the forced snapshots and the ratios against keeping every checkpoint.

    scripts/loopback-only .venv/bin/python scripts/bench/checkpoints.py                 # 300 trials: 2 minutes
    scripts/loopback-only .venv/bin/python scripts/bench/checkpoints.py --trials 1000   # 9 minutes
    scripts/loopback-only .venv/bin/python scripts/bench/checkpoints.py --trials 20 --no-save   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import save

from lstm_ray.config import ExperimentConfig, parse_config

EPOCH_S = 0.02
SLOTS = 2
VARIANTS = {"keep 2": 2, "keep 5": 5, "keep all": None}


def cheap_trial(config: dict) -> None:
    """A learning curve that depends on the hyperparameters; a small checkpoint with every epoch's report."""
    from ray import tune

    quality = abs(config["train.lr"] - 0.01) * 50 + 1.0 / config["model.hidden_size"]
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(EPOCH_S)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "state.json").write_text(json.dumps({"epoch": epoch}))
            metrics = {"val_rmse": quality + 1.0 / epoch, "epoch": epoch}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def experiment(trials: int, epochs: int, keep: int | None, folder: Path) -> ExperimentConfig:
    return parse_config(
        {
            "name": "bench-checkpoints",
            "data": {"source": "builtin:co2"},
            "train": {"max_epochs": epochs},
            "search": {
                "num_samples": trials,
                "grace_period": 1,
                "reduction_factor": 2,
                "space": {"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.hidden_size": {"choice": [8, 16, 32]}},
            },
            "storage": {"path": str(folder), "keep_checkpoints": keep},
        }
    )


def run(cfg: ExperimentConfig) -> dict:
    """One sweep on a fresh local Ray: wall seconds, epochs trained and Tune's experiment snapshots."""
    import ray
    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    from lstm_ray.sweep.trainable import checkpoint_config
    from lstm_ray.sweep.tuning import build_param_space, build_scheduler, build_searcher

    snapshots = {"count": 0, "seconds": 0.0}
    save_to_dir = TuneController.save_to_dir

    def counted(controller, *args, **kwargs):
        start = time.perf_counter()
        try:
            return save_to_dir(controller, *args, **kwargs)
        finally:
            snapshots["count"] += 1
            snapshots["seconds"] += time.perf_counter() - start

    TuneController.save_to_dir = counted
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(SLOTS)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(cheap_trial, {"cpu": 1}),
            param_space=build_param_space(cfg) | {"epochs": cfg.train.max_epochs},
            tune_config=tune.TuneConfig(
                metric=cfg.search.metric,
                mode=cfg.search.mode,
                search_alg=build_searcher(cfg),
                scheduler=build_scheduler(cfg),
                num_samples=cfg.search.num_samples,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                storage_path=cfg.storage.path, verbose=0, checkpoint_config=checkpoint_config(cfg)
            ),
        )
        results = tuner.fit()
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        TuneController.save_to_dir = save_to_dir
    epochs = sum(int(r.metrics.get("epoch", 0)) for r in results)
    return {"wall_s": wall, "epochs": epochs, "ideal_s": epochs * EPOCH_S / SLOTS, **snapshots}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-checkpoints-"))
    results = {}
    for name, keep in VARIANTS.items():
        results[name] = r = run(experiment(args.trials, args.epochs, keep, folder / name.replace(" ", "-")))
        print(
            f"{name:8s}: {args.trials} trials, {r['epochs']} epochs in {r['wall_s']:6.1f} s "
            f"({r['wall_s'] / r['ideal_s']:.1f}x ideal); {r['count']} experiment snapshots, {r['seconds']:.1f} s",
            flush=True,
        )
    baseline = results["keep all"]["wall_s"]
    ratios = {name: r["wall_s"] / baseline for name, r in results.items() if name != "keep all"}
    print("wall time against keeping all: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    if not args.no_save:
        save(
            "checkpoints",
            {"trials": args.trials, "max_epochs": args.epochs, "slots": SLOTS, "results": results},
            f"{args.trials} trials: wall vs keeping every checkpoint "
            + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()),
        )


if __name__ == "__main__":
    main()
