"""Searcher cost per trial as a sweep grows: HyperOpt TPE with `search.max_history` against TPE on every trial.

No Ray and no training: the searcher alone, driven the way Tune drives it in a sweep of short trials under ASHA
(suggest, one to four per-epoch results, complete; one trial at a time). It prints the milliseconds the searcher
spent per trial over the last `--window` trials, for each variant, and their ratio.

    .venv/bin/python scripts/bench/searcher.py                          # 6,000 trials: about 4 minutes
    .venv/bin/python scripts/bench/searcher.py --trials 300 --window 50 --no-save   # smoke run
"""

from __future__ import annotations

import argparse
import random
import time

from common import save

from lstm_ray.config import parse_config
from lstm_ray.search.searchers import build_searcher

SPACE = {"train.lr": {"loguniform": [1e-4, 1e-1]}, "model.hidden_size": {"choice": [8, 16, 32]}}


def ms_per_trial(trials: int, window: int, max_history: int | None) -> float:
    """Milliseconds of searcher work per trial over the last `window` of `trials` trials."""
    cfg = parse_config(
        {
            "name": "bench-searcher",
            "data": {"source": "builtin:co2"},
            "train": {"max_epochs": 4},
            "search": {"num_samples": trials, "max_history": max_history, "space": SPACE},
        }
    )
    searcher, rng = build_searcher(cfg), random.Random(0)
    spent = 0.0
    for n in range(trials):
        start = time.perf_counter()
        config = searcher.suggest(f"t{n}")
        quality = abs(config["train.lr"] - 0.01) * 50 + 1.0 / config["model.hidden_size"]
        epochs = rng.choice([1, 1, 2, 4])  # most trials stopped at the first rung, as under ASHA
        for epoch in range(1, epochs + 1):
            searcher.on_trial_result(f"t{n}", {"val_rmse": quality + 1.0 / epoch, "epoch": epoch})
        searcher.on_trial_complete(f"t{n}", {"val_rmse": quality + 1.0 / epochs, "epoch": epochs})
        if n >= trials - window:
            spent += time.perf_counter() - start
    return spent / window * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6000)
    parser.add_argument("--window", type=int, default=200, help="trials at the end whose cost is averaged")
    parser.add_argument("--max-history", type=int, default=1000)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    bounded = ms_per_trial(args.trials, args.window, args.max_history)
    print(f"max_history {args.max_history}: {bounded:.1f} ms per trial at {args.trials} trials", flush=True)
    unbounded = ms_per_trial(args.trials, args.window, None)
    print(f"every trial     : {unbounded:.1f} ms per trial at {args.trials} trials")
    print(f"max_history / every trial: {bounded / unbounded:.2f}x")
    if not args.no_save:
        save(
            "searcher",
            {"trials": args.trials, "max_history": args.max_history, "bounded_ms": bounded, "unbounded_ms": unbounded},
            f"TPE per trial at {args.trials} trials: {bounded:.1f} ms with max_history {args.max_history}, "
            f"{unbounded:.1f} ms on every trial ({bounded / unbounded:.2f}x)",
        )


if __name__ == "__main__":
    main()
