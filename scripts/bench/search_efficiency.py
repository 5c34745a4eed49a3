"""Search efficiency: how fast, in trials and seconds, each strategy reaches a target validation score.

Equal budget (the same number of trials, the same epochs per trial) on the bundled CO2 series, several seeds:
- lstm-ray: HyperOpt TPE + ASHA (the product's default);
- random: random search, every trial trained to the end (FIFO);
- grid: a 16-point grid, FIFO;
- optuna: TPE sampler + Hyperband pruner, 2 threads, in process.
The target is the median of the best scores all runs reached, so it is hard but reachable. Prints medians over
seeds and draws best-so-far against wall time (docs/bench-results/search_efficiency.png).

    .venv/bin/python scripts/bench/search_efficiency.py              # 5 seeds, about 12 minutes on 2 cores
    .venv/bin/python scripts/bench/search_efficiency.py --seeds 1 --trials 4 --no-save   # smoke run
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, save
from mlflow.tracking import MlflowClient
from throughput import BASE, SLOTS, run_optuna

from lstm_ray.config import ExperimentConfig, parse_config
from lstm_ray.data.dataset import PreparedData, prepare_dataset

GRID = {
    "model.cell": {"grid": ["lstm", "gru"]},
    "model.hidden_size": {"grid": [16, 64]},
    "model.num_layers": {"grid": [1, 2]},
    "train.lr": {"grid": [0.003, 0.02]},
}
STRATEGIES = ("lstm-ray", "random", "grid", "optuna")


def strategy_config(strategy: str, seed: int, trials: int, epochs: int, folder: Path) -> ExperimentConfig:
    raw = copy.deepcopy(BASE)
    raw["name"] = f"eff-{strategy}-{seed}"
    raw["train"] = {"max_epochs": epochs, "seed": seed}
    raw["search"] |= {"num_samples": trials, "seed": seed}
    if strategy in ("random", "grid"):
        raw["search"] |= {"algorithm": strategy, "scheduler": "fifo"}
    if strategy == "grid":
        raw["search"] |= {"space": GRID, "num_samples": max(1, trials // 16)}
    raw["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db"}
    raw["storage"] = {"path": str(folder / "results")}
    return parse_config(raw)


def curve_from_mlflow(cfg: ExperimentConfig, parent_run_id: str, started_ms: int) -> list[tuple[float, int, float]]:
    """(seconds since start, trials finished, best score so far) at each trial's end."""
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    ends = []
    for run in runs:
        history = client.get_metric_history(run.info.run_id, cfg.search.metric)
        if history:
            ends.append((max(m.timestamp for m in history), min(m.value for m in history)))
    return _best_so_far([((t - started_ms) / 1000, v) for t, v in ends])


def run_ray_strategy(cfg: ExperimentConfig, data: PreparedData) -> list[tuple[float, int, float]]:
    import ray

    from lstm_ray.sweep.tuning import run_sweep

    started_ms = int(time.time() * 1000)
    summary = run_sweep(cfg, config_text="", data=data)
    ray.shutdown()
    return curve_from_mlflow(cfg, summary.parent_run_id, started_ms)


def run_optuna_strategy(cfg: ExperimentConfig, data: PreparedData) -> list[tuple[float, int, float]]:
    ends: list[tuple[float, float]] = []
    run_optuna(cfg, data, ends)
    return _best_so_far(ends)


def _best_so_far(ends: list[tuple[float, float]]) -> list[tuple[float, int, float]]:
    curve, best = [], float("inf")
    for i, (t, value) in enumerate(sorted(ends), start=1):
        best = min(best, value)
        curve.append((t, i, best))
    return curve


def reach(curve: list[tuple[float, int, float]], target: float) -> tuple[float, float]:
    """(seconds, trials) until the best score first reached `target`; inf when never."""
    for t, trials, best in curve:
        if best <= target:
            return t, trials
    return float("inf"), float("inf")


def plot(curves: dict[str, list[list[tuple[float, int, float]]]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for color, (name, runs) in zip(plt.cm.tab10.colors, curves.items(), strict=False):
        for i, curve in enumerate(runs):
            ax.step(
                [c[0] for c in curve],
                [c[2] for c in curve],
                where="post",
                color=color,
                alpha=0.7,
                label=name if i == 0 else None,
            )
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:.3g}")
    ax.set(
        xlabel="wall time (s)",
        ylabel="best val_rmse so far (ppmv)",
        yscale="log",
        title="Best score so far: equal trial budget, one line per seed",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-efficiency-"))
    data = prepare_dataset(strategy_config("lstm-ray", 0, args.trials, args.epochs, folder).data)
    curves: dict[str, list] = {name: [] for name in STRATEGIES}
    for seed in range(args.seeds):
        for name in STRATEGIES:
            cfg = strategy_config(name, seed, args.trials, args.epochs, folder)
            runner = run_optuna_strategy if name == "optuna" else run_ray_strategy
            curves[name].append(runner(cfg, data))
            print(
                f"seed {seed} {name:8s}: best {curves[name][-1][-1][2]:.4g} after {curves[name][-1][-1][0]:.1f} s",
                flush=True,
            )
    target = statistics.median(c[-1][2] for runs in curves.values() for c in runs)
    summary = {}
    for name, runs in curves.items():
        hits = [reach(c, target) for c in runs]
        summary[name] = {
            "median_best": statistics.median(c[-1][2] for c in runs),
            "median_seconds_to_target": statistics.median(h[0] for h in hits),
            "median_trials_to_target": statistics.median(h[1] for h in hits),
            "seeds_reaching_target": sum(h[0] < float("inf") for h in hits),
        }
        s = summary[name]
        print(
            f"{name:8s}: median best {s['median_best']:.4g}, reached target {target:.4g} in "
            f"{s['seeds_reaching_target']}/{len(runs)} seeds, median {s['median_seconds_to_target']:.1f} s / "
            f"{s['median_trials_to_target']} trials"
        )
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        plot(curves, target, RESULTS / "search_efficiency.png")
        ours = summary["lstm-ray"]
        line = (
            f"target {target:.3g}: lstm-ray median best {ours['median_best']:.3g} "
            f"({ours['seeds_reaching_target']}/{args.seeds} seeds reach it), random "
            f"{summary['random']['median_best']:.3g}, grid {summary['grid']['median_best']:.3g}, "
            f"optuna {summary['optuna']['median_best']:.3g}; plot search_efficiency.png"
        )
        save(
            "search_efficiency",
            {
                "target": target,
                "seeds": args.seeds,
                "trials": args.trials,
                "summary": summary,
                "curves": curves,
                "slots": SLOTS,
            },
            line,
        )


if __name__ == "__main__":
    main()
