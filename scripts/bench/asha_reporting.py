"""ASHA + TPE: how early-stopped trials are reported to HyperOpt, lstm-ray's way against Ray's default.

Ray's HyperOptSearch tells TPE a trial's *last* value when ASHA stops it, as if that value were final.
lstm-ray's searcher (`lstm_ray/search/fidelity.py`) reports each trial's best value so far with the epochs it trained,
ranked by epochs first. Both are judged on the same budget (the same number of trials, the same ASHA):

1. Learning curves are measured once: 80 LSTM/GRU configurations (cell x hidden size x learning rate x batch
   size) trained 9 epochs on the bundled CO2 series with lstm-ray's own trainer, validation and test RMSE
   and seconds per epoch recorded (two processes, about 1.5 minutes on 2 cores).
2. Each searcher then runs many seeded sweeps over those configurations. The searchers are the real classes
   (Ray's `HyperOptSearch`, lstm-ray's `build_searcher`), driven exactly as Tune drives them (`suggest`,
   `on_trial_result`, `on_trial_complete`), and ASHA is Ray's own bracket (grace 1, reduction 3, max 9) with 2
   trials running at once; trials replay the measured curves in simulated time, so hundreds of sweeps take a
   minute where real ones would take hours.

It prints, over the seeds, the mean validation RMSE of each sweep's pick (its best epoch, as `lstm-ray tune`
picks), its regret against the best of all 80 configurations, the test RMSE of that pick, and the ratios
lstm-ray / Ray default (below 1: lstm-ray finds better configurations), with a paired standard error.

    .venv/bin/python scripts/bench/asha_reporting.py                     # about 3 minutes on 2 cores
    .venv/bin/python scripts/bench/asha_reporting.py --seeds 20 --no-save  # smoke run
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
from common import save

SPACE = {
    "model.cell": ["lstm", "gru"],
    "model.hidden_size": [8, 16, 32, 64],
    "train.lr": [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2],
    "train.batch_size": [32, 128],
}
EPOCHS, GRACE, REDUCTION, SLOTS, INITIAL = 9, 1, 3, 2, 4
BASE = {
    "name": "asha-reporting",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 26, "horizon": 4},
    "train": {"max_epochs": EPOCHS},
    "search": {
        "algorithm": "hyperopt",
        "scheduler": "asha",
        "metric": "val_rmse",
        "mode": "min",
        "n_initial_points": INITIAL,
        "grace_period": GRACE,
        "reduction_factor": REDUCTION,
        "space": {path: {"choice": options} for path, options in SPACE.items()},
    },
}


def key(params: dict) -> str:
    return json.dumps({path: params[path] for path in SPACE}, sort_keys=True)


def measure(configs: list[dict]) -> dict[str, dict]:
    """Train each configuration for EPOCHS epochs; its validation and test RMSE and seconds, by epoch."""
    import torch

    from lstm_ray.config import apply_params, parse_config
    from lstm_ray.data.dataset import prepare_dataset, window_settings
    from lstm_ray.data.windows import window_setting
    from lstm_ray.sweep.trainable import build_trainer
    from lstm_ray.train.training import evaluate, run_epochs, seed_everything

    torch.set_num_threads(1)
    base = parse_config(BASE)
    data = prepare_dataset(base.data, settings=window_settings(base))
    curves = {}
    for params in configs:
        cfg = apply_params(base, params)
        seed_everything(cfg.train.seed)
        trainer = build_trainer(cfg, data, torch.device("cpu"))
        test_windows = data.windows(window_setting(cfg))["test"]
        curve = {"val": [], "test": [], "seconds": []}
        tick = time.perf_counter()

        def report(metrics: dict, state: dict, curve=curve, trainer=trainer, test_windows=test_windows) -> None:
            nonlocal tick
            curve["seconds"].append(time.perf_counter() - tick)
            curve["val"].append(metrics["val_rmse"])
            scores = evaluate(trainer.model, test_windows, data.inverse_targets, torch.device("cpu"))
            curve["test"].append(scores["rmse"])
            tick = time.perf_counter()

        run_epochs(trainer, report)
        curves[key(params)] = curve
    return curves


def measure_all(workers: int) -> dict[str, dict]:
    configs = [dict(zip(SPACE, values, strict=True)) for values in itertools.product(*SPACE.values())]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(measure, [configs[i::workers] for i in range(workers)])
    return {k: v for part in parts for k, v in part.items()}


def ray_default(seed: int):
    from ray import tune
    from ray.tune.search.hyperopt import HyperOptSearch

    searcher = HyperOptSearch(metric="val_rmse", mode="min", n_initial_points=INITIAL, random_state_seed=seed)
    searcher.set_search_properties("val_rmse", "min", {path: tune.choice(v) for path, v in SPACE.items()})
    return searcher


def lstm_ray(seed: int):
    from lstm_ray.config import parse_config
    from lstm_ray.search.searchers import build_searcher

    raw = json.loads(json.dumps(BASE))
    raw["search"]["seed"] = seed
    return build_searcher(parse_config(raw))


class _Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def sweep(make_searcher, seed: int, trials: int, curves: dict[str, dict]) -> dict:
    """One sweep: `trials` trials, SLOTS at a time, ASHA deciding at every epoch; returns its pick."""
    from ray.tune.schedulers.async_hyperband import _Bracket

    searcher = make_searcher(seed)
    bracket = _Bracket(GRACE, EPOCHS, REDUCTION, 0)
    events: list[tuple[float, int, str]] = []  # (time the epoch ends, epoch, trial id)
    running: dict[str, dict] = {}
    started, epochs_trained, now = 0, 0, 0.0
    pick = {"val": math.inf, "test": math.nan}

    def launch(at: float) -> None:
        nonlocal started
        trial_id = f"t{started}"
        started += 1
        config = searcher.suggest(trial_id)
        running[trial_id] = curves[key(config)]
        heapq.heappush(events, (at + running[trial_id]["seconds"][0], 1, trial_id))

    for _ in range(min(SLOTS, trials)):
        launch(now)
    while events:
        now, epoch, trial_id = heapq.heappop(events)
        curve = running[trial_id]
        epochs_trained += 1
        val = curve["val"][epoch - 1]
        if val < pick["val"]:
            pick = {"val": val, "test": curve["test"][epoch - 1]}
        result = {"val_rmse": val, "epoch": epoch, "training_iteration": epoch, "early_stopped": 0.0}
        stop = epoch >= EPOCHS or bracket.on_result(_Trial(trial_id), epoch, -val) == "STOP"
        if stop:
            searcher.on_trial_complete(trial_id, result=result)
            del running[trial_id]
            if started < trials:
                launch(now)
        else:
            searcher.on_trial_result(trial_id, result)
            heapq.heappush(events, (now + curve["seconds"][epoch], epoch + 1, trial_id))
    return pick | {"epochs": epochs_trained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="sweeps per searcher (paired by seed)")
    parser.add_argument("--trials", type=int, default=16, help="trials per sweep: the budget")
    parser.add_argument("--workers", type=int, default=2, help="processes measuring the curves")
    parser.add_argument("--curves", type=Path, help="reuse curves saved by an earlier run instead of measuring")
    parser.add_argument("--save-curves", type=Path, help="also write the measured curves here, for --curves")
    parser.add_argument("--no-save", action="store_true", help="do not write docs/bench-results")
    args = parser.parse_args()

    started = time.monotonic()
    curves = json.loads(args.curves.read_text()) if args.curves else measure_all(args.workers)
    measured = time.monotonic() - started
    if args.save_curves:
        args.save_curves.write_text(json.dumps(curves))
    best_val = min(min(c["val"]) for c in curves.values())
    runs = {
        name: [sweep(make, seed, args.trials, curves) for seed in range(args.seeds)]
        for name, make in (("ray_default", ray_default), ("lstm_ray", lstm_ray))
    }
    result = {
        "seeds": args.seeds,
        "trials": args.trials,
        "configurations": len(curves),
        "epochs": EPOCHS,
        "slots": SLOTS,
        "best_possible_val_rmse": best_val,
        "measure_seconds": measured,
        "total_seconds": time.monotonic() - started,
    }
    for name, picks in runs.items():
        result[name] = {
            "val_rmse": statistics.fmean(p["val"] for p in picks),
            "regret": statistics.fmean(p["val"] - best_val for p in picks),
            "test_rmse": statistics.fmean(p["test"] for p in picks),
            "epochs_trained": statistics.fmean(p["epochs"] for p in picks),
        }
    ours, ray = result["lstm_ray"], result["ray_default"]
    for metric in ("val_rmse", "regret", "test_rmse", "epochs_trained"):
        result[f"ratio_{metric}"] = ours[metric] / ray[metric]
    diff = np.array([o["val"] - r["val"] for o, r in zip(runs["lstm_ray"], runs["ray_default"], strict=True)])
    result["paired_val_difference"] = float(diff.mean())
    result["paired_val_difference_se"] = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    result["wins_ties_losses"] = [int((diff < 0).sum()), int((diff == 0).sum()), int((diff > 0).sum())]

    print(
        f"{args.seeds} seeded sweeps each, {args.trials} trials, ASHA grace {GRACE} x{REDUCTION} to {EPOCHS} "
        f"epochs, {SLOTS} at a time, over {len(curves)} measured configurations (best val_rmse {best_val:.4f})"
    )
    for name in ("ray_default", "lstm_ray"):
        r = result[name]
        print(
            f"  {name:12s} pick val_rmse {r['val_rmse']:.4f}  regret {r['regret']:.4f}  "
            f"test_rmse {r['test_rmse']:.4f}  epochs trained {r['epochs_trained']:.1f}"
        )
    print(
        f"lstm-ray / Ray default: val_rmse x{result['ratio_val_rmse']:.3f}, regret x{result['ratio_regret']:.3f}, "
        f"test_rmse x{result['ratio_test_rmse']:.3f}, epochs x{result['ratio_epochs_trained']:.3f}"
    )
    print(
        f"paired val_rmse difference {result['paired_val_difference']:+.4f} +- "
        f"{result['paired_val_difference_se']:.4f} (wins/ties/losses {result['wins_ties_losses']})"
    )
    if not args.no_save:
        summary = f"regret x{result['ratio_regret']:.3f}, test_rmse x{result['ratio_test_rmse']:.3f} vs Ray default"
        print(f"JSON: {save('asha_reporting', result, summary)}")


if __name__ == "__main__":
    main()
