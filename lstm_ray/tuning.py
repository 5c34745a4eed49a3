"""Build and run the Ray Tune sweep for an experiment; pick the winner and score it on the test split.

    summary = run_sweep(load_config("configs/quickstart.yaml"), config_text=..., address=None)

With no address Ray starts in this process on this machine; with an address (or RAY_ADDRESS) the sweep
runs on that cluster. MLflow is reached only through `tracking.SweepTracker`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, Searcher

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.data.dataset import PreparedData, prepare_dataset, window_settings
from lstm_ray.progress import ProgressLine
from lstm_ray.search_space import Distribution
from lstm_ray.tracking import SweepTracker
from lstm_ray.trainable import load_checkpoint_state, model_from_checkpoint, train_trial, window_setting
from lstm_ray.training import evaluate


@dataclass
class SweepSummary:
    name: str
    metric: str
    mode: str
    best_params: dict[str, Any]
    best_value: float
    test_metrics: dict[str, float]
    counts: dict[str, int]
    parent_run_id: str
    model_uri: str
    storage_path: str
    elapsed_s: float
    failures: dict[str, str] = field(default_factory=dict)  # trial id -> reason


def to_tune_domain(dist: Distribution) -> Any:
    """A Ray Tune domain for one parsed distribution."""
    args = dist.args
    if dist.kind == "choice":
        return tune.choice(list(args))
    if dist.kind == "grid":
        return tune.grid_search(list(args))
    if dist.kind == "uniform":
        return tune.uniform(*args)
    if dist.kind == "loguniform":
        return tune.loguniform(*args)
    if dist.kind == "quniform":
        return tune.quniform(*args)
    if dist.kind == "randint":
        return tune.randint(*args)
    raise ValueError(f"unknown distribution {dist.kind!r}")


def build_param_space(cfg: ExperimentConfig) -> dict[str, Any]:
    return {path: to_tune_domain(dist) for path, dist in cfg.parsed_space().items()}


def build_searcher(cfg: ExperimentConfig) -> Searcher | BasicVariantGenerator:
    search = cfg.search
    if search.algorithm == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(
            metric=search.metric,
            mode=search.mode,
            n_initial_points=search.n_initial_points,
            random_state_seed=search.seed,
            points_to_evaluate=search.points_to_evaluate or None,
        )
    if search.algorithm in ("random", "grid"):
        return BasicVariantGenerator(random_state=search.seed)
    raise ValueError(f"unknown search.algorithm {search.algorithm!r}; valid: hyperopt, random, grid")


def build_scheduler(cfg: ExperimentConfig) -> TrialScheduler:
    search = cfg.search
    if search.scheduler == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg.train.max_epochs,
            grace_period=min(search.grace_period, cfg.train.max_epochs),
            reduction_factor=search.reduction_factor,
        )
    if search.scheduler == "fifo":
        return FIFOScheduler()
    raise ValueError(f"unknown search.scheduler {search.scheduler!r}; valid: asha, fifo")


def start_ray(address: str | None, verbose: bool) -> None:
    if ray.is_initialized():
        return
    ray.init(
        address=address,
        include_dashboard=False if address is None else None,
        logging_level=logging.INFO if verbose else logging.WARNING,
        log_to_driver=verbose,
    )


def trial_slots(cfg: ExperimentConfig) -> int:
    """How many trials fit on the cluster at once (the search's concurrency unless max_concurrent says less)."""
    resources = ray.cluster_resources()
    fits = []
    if cfg.resources.cpu > 0:
        fits.append(math.floor(resources.get("CPU", 0) / cfg.resources.cpu))
    if cfg.resources.gpu > 0:
        fits.append(math.floor(resources.get("GPU", 0) / cfg.resources.gpu))
    slots = max(1, min(fits))
    return min(slots, cfg.search.max_concurrent or slots)


def run_sweep(
    cfg: ExperimentConfig,
    *,
    config_text: str,
    data: PreparedData | None = None,
    address: str | None = None,
    verbose: bool = False,
) -> SweepSummary:
    """Run the sweep; `data` is the prepared data set when the caller already loaded it."""
    started = time.monotonic()
    data = data or prepare_dataset(cfg.data, settings=window_settings(cfg))
    start_ray(address, verbose)
    slots = trial_slots(cfg)
    # Ray keeps one trial pending for a model-based searcher by default, which serialises trial launches.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(slots)
    # Keeping the best checkpoints forces an experiment snapshot every few epochs; that is intended, not news.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter is silent at verbose=0
    tracker = SweepTracker.start(cfg, config_text)
    total = cfg.search.num_samples * _grid_size(cfg)
    progress = ProgressLine(cfg.search.metric, cfg.search.mode, total, cfg.train.max_epochs)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(train_trial, experiment=cfg, data=data),
            {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu},
        ),
        param_space=build_param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode,
            search_alg=build_searcher(cfg),
            scheduler=build_scheduler(cfg),
            num_samples=cfg.search.num_samples,
            max_concurrent_trials=slots,
            reuse_actors=True,  # a new worker process per trial re-imports torch: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=storage_uri(cfg.storage.path),
            callbacks=[tracker.callback, progress],
            verbose=2 if verbose else 0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute=cfg.search.metric,
                checkpoint_score_order=cfg.search.mode,
            ),
        ),
    )
    try:
        results = tuner.fit()
        return _finish(cfg, data, results, tracker, started)
    except BaseException:
        tracker.finish({}, {"lstm_ray.error": "the sweep was interrupted"}, status="FAILED")
        raise


def _finish(
    cfg: ExperimentConfig, data: PreparedData, results: tune.ResultGrid, tracker: SweepTracker, started: float
) -> SweepSummary:
    metric, mode = cfg.search.metric, cfg.search.mode
    failures = {r.metrics.get("trial_id", r.path): _last_line(r.error) for r in results if r.error is not None}
    scored = [r for r in results if r.metrics_dataframe is not None and metric in r.metrics_dataframe]
    if not scored:
        tracker.finish({}, {"lstm_ray.error": "no trial reported a result"}, status="FAILED")
        raise RuntimeError(f"no trial reported {metric}; every trial failed: {failures}")
    best = results.get_best_result(metric, mode, scope="all", filter_nan_and_inf=True)
    state = load_checkpoint_state(best.get_best_checkpoint(metric, mode))
    model = model_from_checkpoint(state)
    best_cfg = apply_params(cfg, best.config)
    test_windows = data.windows(window_setting(best_cfg))["test"]
    test = {f"test_{k}": v for k, v in evaluate(model, test_windows, data.inverse_targets, _cpu()).items()}
    model_uri = tracker.log_model(model, test_windows.x[:4], state["preprocessing"])
    best_value = float(state["metrics"][metric])
    elapsed = time.monotonic() - started
    compute = sum(float(r.metrics.get("time_total_s", 0.0)) for r in results)
    tracker.finish(
        test | {f"best_{metric}": best_value, "sweep_seconds": elapsed, "trial_compute_seconds": compute},
        {"lstm_ray.best_trial_id": str(best.metrics.get("trial_id")), "lstm_ray.model_uri": model_uri},
    )
    counts = dict(tracker.callback.outcome_counts)
    return SweepSummary(
        name=cfg.name,
        metric=metric,
        mode=mode,
        best_params=dict(best.config),
        best_value=best_value,
        test_metrics=test,
        counts=counts,
        parent_run_id=tracker.parent_run_id,
        model_uri=model_uri,
        storage_path=best.path.rsplit("/", 1)[0],
        elapsed_s=elapsed,
        failures=failures,
    )


def storage_uri(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


def _grid_size(cfg: ExperimentConfig) -> int:
    return math.prod(len(d.args) for d in cfg.parsed_space().values() if d.kind == "grid")


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _cpu() -> Any:
    import torch

    return torch.device("cpu")
