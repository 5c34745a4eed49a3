"""Small-trial sweep throughput: lstm-ray against Optuna in process and a hand-written Ray Tune script.

All three run the same search (16 LSTM/GRU trials on the bundled CO2 series, TPE proposing, successive halving
stopping) with the same model and epoch code, on the same cores, in this one session:
- lstm-ray: `run_sweep`, MLflow tracking on (SQLite), as `lstm-ray tune` runs it;
- optuna: TPE sampler + Hyperband pruner, 2 worker threads, in this process, no tracking;
- ray-docs: HyperOptSearch + ASHAScheduler + MLflowLoggerCallback, written the way Ray's documentation shows it.
It prints epochs trained per second of wall time and sweep efficiency: the same epochs timed alone in a warm
single-threaded loop, divided by wall time x slots.

    .venv/bin/python scripts/bench/throughput.py                 # about 5 minutes on 2 cores
    .venv/bin/python scripts/bench/throughput.py --trials 4 --epochs 2 --no-save   # smoke run
    .venv/bin/python scripts/bench/throughput.py --address $RAY_ADDRESS    # lstm-ray on a Ray already running
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import save
from ray import tune

from lstm_ray.config import ExperimentConfig, apply_params, parse_config
from lstm_ray.data.dataset import PreparedData, prepare_dataset
from lstm_ray.data.windows import window_setting
from lstm_ray.train.models import build_model
from lstm_ray.train.training import fit, seed_everything

SLOTS = 2
SPACE = {
    "model.cell": {"choice": ["lstm", "gru"]},
    "model.hidden_size": {"choice": [16, 32, 64]},
    "model.num_layers": {"choice": [1, 2]},
    "train.lr": {"loguniform": [1.0e-3, 3.0e-2]},
    "train.batch_size": {"choice": [32, 64, 128]},
}
BASE = {
    "name": "bench-throughput",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 26, "horizon": 4},
    "search": {
        "algorithm": "hyperopt",
        "scheduler": "asha",
        "grace_period": 1,
        "reduction_factor": 2,
        "n_initial_points": 4,
        "space": SPACE,
    },
    "resources": {"cpu": 1},
}


def experiment(trials: int, epochs: int, folder: Path) -> ExperimentConfig:
    raw = copy.deepcopy(BASE)
    raw["train"] = {"max_epochs": epochs}
    raw["search"]["num_samples"] = trials
    raw["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db"}
    raw["storage"] = {"path": str(folder / "results")}
    return parse_config(raw)


def train_epochs(cfg: ExperimentConfig, data: PreparedData, report) -> None:
    """The shared epoch code every contender runs: our model and loop, one thread."""
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, len(data.input_index), len(data.target_index), cfg.data.horizon)
    fit(
        model,
        data.windows(window_setting(cfg)),
        cfg.train,
        inverse_targets=data.inverse_targets,
        report=report,
        device=torch.device("cpu"),
    )


class SweepClock(tune.Callback):
    """Records when the first trial started and the last one ended, and each trial's (params, epochs)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_start = self.last_end = math.nan
        self.trials: list[tuple[dict, int]] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if math.isnan(self.first_start):
            self.first_start = time.perf_counter() - self.start

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.last_end = time.perf_counter() - self.start
        self.trials.append((dict(trial.config), int((trial.last_result or {}).get("epoch", 0))))

    def phases(self, wall: float) -> dict[str, float]:
        """Seconds before the first trial started, while trials ran, and after the last one ended."""
        return {
            "start_s": self.first_start,
            "trials_s": self.last_end - self.first_start,
            "end_s": wall - self.last_end,
        }


def run_lstm_ray(
    cfg: ExperimentConfig, data: PreparedData, address: str | None = None
) -> tuple[float, list[tuple[dict, int]], dict]:
    """`run_sweep` as `lstm-ray tune` runs it; returns wall seconds, the trials and the sweep's phases."""
    import ray

    from lstm_ray.sweep.tuning import run_sweep

    clock = SweepClock()
    run_sweep(cfg, config_text="", data=data, address=address, callbacks=[clock])
    wall = time.perf_counter() - clock.start
    ray.shutdown()
    return wall, clock.trials, clock.phases(wall)


def run_optuna(
    cfg: ExperimentConfig, data: PreparedData, ends: list | None = None
) -> tuple[float, list[tuple[dict, int]]]:
    """Optuna in process; appends (seconds since start, best score) per finished trial to `ends` if given."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[tuple[dict, int]] = []
    start = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        params = {
            "model.cell": trial.suggest_categorical("model.cell", ["lstm", "gru"]),
            "model.hidden_size": trial.suggest_categorical("model.hidden_size", [16, 32, 64]),
            "model.num_layers": trial.suggest_categorical("model.num_layers", [1, 2]),
            "train.lr": trial.suggest_float("train.lr", 1e-3, 3e-2, log=True),
            "train.batch_size": trial.suggest_categorical("train.batch_size", [32, 64, 128]),
        }
        seen = {"epoch": 0, "value": float("inf"), "best": float("inf")}

        def report(metrics: dict, _state: dict) -> None:
            seen.update(epoch=metrics["epoch"], value=metrics["val_rmse"], best=min(seen["best"], metrics["val_rmse"]))
            trial.report(metrics["val_rmse"], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            train_epochs(apply_params(cfg, params), data, report)
        finally:
            trials.append((params, seen["epoch"]))
            if ends is not None and seen["epoch"]:
                ends.append((time.perf_counter() - start, seen["best"]))
        return seen["value"]

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=cfg.search.n_initial_points),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.train.max_epochs, reduction_factor=2),
    )
    study.optimize(objective, n_trials=cfg.search.num_samples, n_jobs=SLOTS)
    return time.perf_counter() - start, trials


def run_ray_docs(cfg: ExperimentConfig, data: PreparedData, folder: Path) -> tuple[float, list[tuple[dict, int]]]:
    """HyperOptSearch + ASHAScheduler + MLflowLoggerCallback, as in Ray Tune's documentation examples."""
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.hyperopt import HyperOptSearch

    def trainable(config: dict, data: PreparedData) -> None:
        train_epochs(apply_params(cfg, config), data, lambda metrics, _state: tune.report(metrics))

    space = {
        "model.cell": tune.choice(["lstm", "gru"]),
        "model.hidden_size": tune.choice([16, 32, 64]),
        "model.num_layers": tune.choice([1, 2]),
        "train.lr": tune.loguniform(1e-3, 3e-2),
        "train.batch_size": tune.choice([32, 64, 128]),
    }
    start = time.perf_counter()
    ray.init(num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_parameters(trainable, data=data),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_rmse",
            mode="min",
            num_samples=cfg.search.num_samples,
            search_alg=HyperOptSearch(n_initial_points=cfg.search.n_initial_points, random_state_seed=0),
            scheduler=ASHAScheduler(max_t=cfg.train.max_epochs, grace_period=1, reduction_factor=2),
        ),
        run_config=tune.RunConfig(
            storage_path=str(folder / "ray-docs"),
            verbose=0,
            callbacks=[MLflowLoggerCallback(tracking_uri=f"sqlite:///{folder}/ray-docs.db", experiment_name="docs")],
        ),
    )
    results = tuner.fit()
    wall = time.perf_counter() - start
    ray.shutdown()
    trials = [({k: v for k, v in r.config.items()}, int(r.metrics.get("epoch", 0))) for r in results]
    return wall, trials


def ideal_seconds(cfg: ExperimentConfig, data: PreparedData, trials: list[tuple[dict, int]]) -> float:
    """The same epochs, each trial alone, in a warm single-threaded loop."""
    torch.set_num_threads(1)
    total = 0.0
    for params, epochs in trials:
        if epochs < 1:
            continue
        trial_cfg = apply_params(cfg, params | {"train.max_epochs": epochs})
        start = time.perf_counter()
        train_epochs(trial_cfg, data, lambda m, s: None)
        total += time.perf_counter() - start
    return total


def measure(
    cfg: ExperimentConfig, data: PreparedData, wall: float, trials: list[tuple[dict, int]], phases: dict | None
) -> dict:
    """Epochs per second and efficiency over the whole run, and over the trial phase alone when known."""
    epochs = sum(e for _, e in trials)
    ideal = ideal_seconds(cfg, data, trials)
    result = {
        "wall_s": wall,
        "trials": len(trials),
        "epochs": epochs,
        "epochs_per_s": epochs / wall,
        "ideal_s": ideal,
        "efficiency": ideal / (wall * SLOTS),
    }
    if phases:
        result |= {
            "phases": phases,
            "trial_phase_epochs_per_s": epochs / phases["trials_s"],
            "trial_phase_efficiency": ideal / (phases["trials_s"] * SLOTS),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=["lstm-ray", "optuna", "ray-docs"])
    parser.add_argument("--address", help="run lstm-ray on this Ray cluster, already running (HOST:PORT)")
    parser.add_argument("--no-save", action="store_true", help="do not write JSON or docs/benchmarks.md")
    parser.add_argument("--label", default="", help="saved as throughput-LABEL, e.g. before / after a change")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    cfg = experiment(args.trials, args.epochs, folder)
    data = prepare_dataset(cfg.data)
    train_epochs(apply_params(cfg, {"train.max_epochs": 1}), data, lambda m, s: None)  # warm torch up
    runners = {
        "lstm-ray": lambda: run_lstm_ray(cfg, data, args.address),
        "optuna": lambda: run_optuna(cfg, data),
        "ray-docs": lambda: run_ray_docs(cfg, data, folder),
    }
    results = {}
    for name in args.only:
        wall, trials, *phases = runners[name]()
        results[name] = measure(cfg, data, wall, trials, phases[0] if phases else None)
        r = results[name]
        line = (
            f"{name:9s}: {r['trials']} trials, {r['epochs']} epochs in {wall:6.1f} s = {r['epochs_per_s']:5.2f} "
            f"epochs/s, efficiency {r['efficiency']:.0%}"
        )
        if "phases" in r:
            p = r["phases"]
            line += (
                f" | start {p['start_s']:.1f} s, trials {p['trials_s']:.1f} s ({r['trial_phase_epochs_per_s']:.2f} "
                f"epochs/s, efficiency {r['trial_phase_efficiency']:.0%}), end {p['end_s']:.1f} s"
            )
        print(line, flush=True)
    if "lstm-ray" in results:
        for name in [n for n in results if n != "lstm-ray"]:
            ratio = results["lstm-ray"]["epochs_per_s"] / results[name]["epochs_per_s"]
            print(f"lstm-ray / {name}: {ratio:.2f}x epochs per second")
    if not args.no_save and "lstm-ray" in results:
        ours = results["lstm-ray"]
        summary = f"epochs/s lstm-ray {ours['epochs_per_s']:.2f} (eff. {ours['efficiency']:.0%}"
        if "phases" in ours:
            summary += (
                f"; trial phase {ours['trial_phase_epochs_per_s']:.2f}, eff. {ours['trial_phase_efficiency']:.0%}"
            )
        summary += ")" + "".join(
            f", {name} {r['epochs_per_s']:.2f} (eff. {r['efficiency']:.0%})"
            for name, r in results.items()
            if name != "lstm-ray"
        )
        save(
            f"throughput-{args.label}" if args.label else "throughput",
            {"trials": args.trials, "max_epochs": args.epochs, "slots": SLOTS, "results": results},
            summary,
        )


if __name__ == "__main__":
    main()
