"""Build and run the Ray Tune sweep for an experiment; pick the winner and score it on the test split.

    summary = run_sweep(load_config("configs/quickstart.yaml"), config_text=..., address=None)

With no address Ray starts in this process on this machine; with an address (or RAY_ADDRESS) the sweep
runs on that cluster. MLflow is reached only through `tracking.SweepTracker`. `complete_sweep` is the end a new
sweep and a resumed one (`resume.py`) share: fit, re-evaluate, finish (`finish.py`), close the parent run on failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

import ray
from ray import tune
from ray.tune.search import SearchAlgorithm, Searcher
from ray.tune.stopper import CombinedStopper

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.data.dataset import PreparedData, prepare_sweep_data
from lstm_ray.reports.record import trial_size
from lstm_ray.search.budgets import CostBudget, TargetReached, TrialCap, limit_trials
from lstm_ray.search.cost import planned_trials, refuse_unpriced_budget
from lstm_ray.search.schedulers import build_scheduler
from lstm_ray.search.searchers import KnownPoint, build_param_space, build_searcher, to_tune_domain
from lstm_ray.storage import as_uri, save_resume_info, sweep_folder_name
from lstm_ray.sweep import retry_policy
from lstm_ray.sweep.capacity import (
    UNLIMITED,
    NodeType,
    check_this_machine,
    how_many_fit,
    node_types,
    refuse_unfit_trial,
    trial_demand,
)
from lstm_ray.sweep.finish import SweepSummary, close_failed, closed_on_failure, finish_sweep, scored_trials
from lstm_ray.sweep.gpu_packing import AUTO, GpuPacking
from lstm_ray.sweep.progress import ProgressLine, drop_ray_notices, shorten_trial_errors
from lstm_ray.sweep.reevaluate import Reevaluation, reevaluate
from lstm_ray.sweep.signer import SweepSigner
from lstm_ray.sweep.trainable import checkpoint_config, result_loggers, train_packed_trial, train_trial
from lstm_ray.sweep.warm_start import warm_start
from lstm_ray.tracking.callbacks import TrialLogger
from lstm_ray.tracking.sweep import TAG_BUDGET, SweepTracker, UntrackedSweep, start_tracking

__all__ = [
    "SweepSummary",
    "build_param_space",
    "build_scheduler",
    "build_searcher",
    "build_tuner",
    "complete_sweep",
    "run_sweep",
    "to_tune_domain",
]


CLUSTER_RETRIES = 2  # resources.max_failures on a cluster unless the config says otherwise


def start_ray(address: str | None, verbose: bool) -> None:
    if ray.is_initialized():
        return
    if address is None:
        # Ray prestarts an idle worker per CPU for a new driver. Tune's trial actors carry a runtime env of their
        # own, so they never take those workers, which only take CPU from the sweep's start.
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    ray.init(
        address=address,
        include_dashboard=False if address is None else None,
        logging_level=logging.INFO if verbose else logging.WARNING,
        log_to_driver=verbose,
    )


def trial_slots(cfg: ExperimentConfig, autoscaling: Sequence[NodeType] = ()) -> int:
    """How many trials run at once: what fits the live nodes plus the nodes the autoscaler can add
    (`autoscaling`), unless search.max_concurrent says less."""
    demand = trial_demand(cfg)
    slots = how_many_fit(demand, ray.cluster_resources())
    for kind in autoscaling:
        most = kind.max_workers if kind.max_workers != UNLIMITED else planned_trials(cfg)
        slots += how_many_fit(demand, kind.resources) * most if kind.resources else 0
    slots = max(1, min(slots, planned_trials(cfg)))
    return min(slots, cfg.search.max_concurrent or slots)


def run_sweep(
    cfg: ExperimentConfig,
    *,
    config_text: str,
    data: PreparedData | None = None,
    address: str | None = None,
    verbose: bool = False,
    callbacks: list[tune.Callback] | None = None,
    progress: TextIO | None = None,
) -> SweepSummary:
    """Run the sweep; `data` is the prepared data set when the caller already loaded it.

    `callbacks` are extra Ray Tune callbacks; `progress` is where the progress line goes (default stdout; the API
    passes a notebook's updating line, or a null stream). Raises ConfigError for a warm start that names nothing, and
    KeyboardInterrupt when the sweep was interrupted (Ctrl-C): its state is saved for `lstm-ray resume`.
    """
    started = time.monotonic()  # the one clock of the sweep: progress line and summary
    if address is None and not os.environ.get("RAY_ADDRESS") and not ray.is_initialized():
        check_this_machine(cfg)  # before Ray starts here: a trial too large for this machine, a precision it cannot run
        refuse_unpriced_budget(cfg, [])  # the Ray started here has no node price label
    ray_start = f"joining Ray at {address}" if address else "starting Ray"
    print(f"Sweep {cfg.name}: {ray_start} and MLflow ...", flush=True)  # at once: Ray takes seconds to start
    if cfg.resources.max_failures is None:
        cfg = apply_params(cfg, {"resources.max_failures": CLUSTER_RETRIES if address else 0})
    data = data or prepare_sweep_data(cfg)
    warmed = warm_start(cfg, data)
    if cfg.search.warm_start:  # which earlier trials the searcher learns from, and why not the others
        print(f"Sweep {cfg.name}: {warmed.line()}", flush=True)
    known = warmed.points
    tracker, searcher, slots = start_sweep_services(cfg, config_text, data, known, address, verbose)
    if isinstance(tracker, SweepTracker):  # a trial's size goes with its end write, not in a call of its own
        tracker.callback.sizes = lambda config: trial_size(apply_params(cfg, config), data)
    with closed_on_failure(tracker):
        name = sweep_folder_name(cfg)
        save_resume_info(as_uri(cfg.storage.path), name, cfg, tracker.parent_run_id)
        # Named up front so whoever follows the log (`lstm-ray submit --follow`) can open the run while it runs.
        print(f"Sweep {name}: MLflow parent run {tracker.parent_run_id or '- (tracking.enabled: false)'}", flush=True)
        line = ProgressLine(
            cfg.search.metric,
            cfg.search.mode,
            planned_trials(cfg),
            cfg.train.max_epochs,
            out=progress or sys.stdout,
            started=started,
        )
        cost = CostBudget.from_config(cfg, slots)  # search.budget; first: a trial's cost is logged before its run ends
        tuner = build_tuner(
            cfg,
            data,
            searcher=searcher,
            slots=slots,
            name=name,
            callbacks=[*([cost] if cost else []), tracker.callback, line, SweepSigner(), *(callbacks or [])],
            verbose=verbose,
        )
    return complete_sweep(cfg, data, tuner, tracker, slots=slots, verbose=verbose, started=started)


def complete_sweep(
    cfg: ExperimentConfig,
    data: PreparedData,
    tuner: tune.Tuner,
    tracker: SweepTracker | UntrackedSweep,
    *,
    slots: int,
    verbose: bool,
    started: float,
) -> SweepSummary:
    """The end a new sweep and a resumed one share: `tuner.fit()` under lstm-ray's Tune settings, the
    re-evaluation `search.reevaluate` asks for, then `finish_sweep` (the winner scored and logged, the parent run
    closed). Whatever raises (Ctrl-C: KeyboardInterrupt) closes the parent run first (`closed_on_failure`).
    `started` is the sweep's `time.monotonic()` start: the one clock of its elapsed time and progress line."""
    with closed_on_failure(tracker):
        for callback in tuner._local_tuner.get_run_config().callbacks or []:
            if isinstance(callback, ProgressLine):  # a resumed sweep's, unpickled: its clock starts with the resume
                callback.started = started
        cost = wire_budget(tuner, tracker)
        with tune_settings(slots, verbose):
            results = fit_or_interrupt(tuner)
            if cost is not None and cost.closed():
                print(f"Sweep {cfg.name}: {cost.ended_line()}", flush=True)
                tracker.log_metrics({}, None, tags={TAG_BUDGET: cost.ended_line()})
            reevaluation = reevaluated(cfg, data, results, tracker, slots)
        return finish_sweep(cfg, data, results, tracker, started, reevaluation)


def wire_budget(tuner: tune.Tuner, tracker: SweepTracker | UntrackedSweep) -> CostBudget | None:
    """Connect the sweep's CostBudget (search.budget), a new one or one a resume unpickled, to what it does not
    pickle: the tracker it logs cost to, the progress line it reports to, the trial logger it tells why it stopped
    a trial, and the trial cap it gates."""
    callbacks = tuner._local_tuner.get_run_config().callbacks or []
    cost = next((c for c in callbacks if isinstance(c, CostBudget)), None)
    if cost is None:
        return None
    cost.log = tracker.log_metrics
    for callback in callbacks:
        if isinstance(callback, ProgressLine):
            callback.budget_state = cost.state
    if isinstance(tracker.callback, TrialLogger):
        tracker.callback.stop_reasons = cost.stopped
    search_alg = tuner._local_tuner._tune_config.search_alg
    if isinstance(search_alg, TrialCap) and search_alg.gate is None:  # unpickled by a resume: its gate is not
        search_alg.gate = cost.room_for_next
    return cost


def start_sweep_services(
    cfg: ExperimentConfig,
    config_text: str,
    data: PreparedData,
    known: Sequence[KnownPoint],
    address: str | None,
    verbose: bool,
) -> tuple[SweepTracker | UntrackedSweep, Searcher | SearchAlgorithm, int]:
    """The sweep's tracker (parent run created, its params as `data` resolved them), its searcher (told the `known`
    points) and Ray (started or joined), with the number of trial slots.

    Ray starts on the main thread (ray.init wants it) while threads build the searcher (importing HyperOpt takes
    a second or more) and set up a local store, whose SQLite file takes seconds to create. A tracking server is
    reached before Ray starts, so an unreachable one fails first.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        searcher = pool.submit(build_searcher, cfg, known)
        tracking = pool.submit(start_tracking, cfg, config_text, data)
        if not _local_store(cfg.tracking.uri):
            tracking.result()
        try:
            slots = prepare_tune(cfg, address, verbose)
            search_alg = searcher.result()
        except BaseException as err:
            close_failed(tracking.result(), err)
            raise
        return tracking.result(), search_alg, slots


def _local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def prepare_tune(cfg: ExperimentConfig, address: str | None, verbose: bool) -> int:
    """Start (or join) Ray; returns the number of trial slots. ConfigError when a trial fits no live node and no
    node type the cluster's autoscaler can add."""
    drop_ray_notices()
    start_ray(address, verbose)
    if not verbose:
        shorten_trial_errors()
    # Only a cluster Ray was asked to join can autoscale; the in-process one never does.
    nodes = [n for n in ray.nodes() if n["Alive"]]
    types = node_types(nodes) if address else []
    refuse_unfit_trial(cfg, [n["Resources"] for n in nodes], types)  # Tune would wait for such a trial forever
    workers = [n.get("Labels") or {} for n in nodes if how_many_fit(trial_demand(cfg), n["Resources"])]
    refuse_unpriced_budget(cfg, workers + [kind.labels for kind in types])  # search.budget.usd: every node priced
    return trial_slots(cfg, types)


@contextlib.contextmanager
def tune_settings(slots: int, verbose: bool) -> Iterator[None]:
    """Tune's process-wide knobs, environment variables it reads as a run starts: set for lstm-ray's runs and put
    back after them, so another Tune run in this process gets Tune's defaults (or the user's settings)."""
    settings = {
        # Ray keeps one trial pending for a model-based searcher by default, which serialises trial launches.
        "TUNE_MAX_PENDING_TRIALS_PG": str(slots),
        # Tune would add a TensorBoard logger to every run; `result_loggers` adds the files the config asks for.
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    }
    unless_set = {
        # Keeping only the best checkpoints (storage.keep_checkpoints) forces experiment snapshots: intended.
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        **({} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"}),  # the legacy reporter is silent at verbose=0
    }
    settings |= {key: value for key, value in unless_set.items() if key not in os.environ}
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def trainable(cfg: ExperimentConfig, data: PreparedData) -> Any:
    """The trial function with the experiment and data bound and the resources one trial takes; with
    resources.gpu: auto, each trial's own GPU share (ConfigError when the largest trial fits no GPU)."""
    if cfg.resources.gpu == AUTO:
        packing = GpuPacking.for_ray(cfg, data)
        bound = tune.with_parameters(train_packed_trial, experiment=cfg, data=data, packing=packing)
        return tune.with_resources(bound, packing.trial_resources)
    return tune.with_resources(
        tune.with_parameters(train_trial, experiment=cfg, data=data),
        {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu, "memory": (cfg.resources.memory_mb or 0) * 2**20},
    )


def build_tuner(
    cfg: ExperimentConfig,
    data: PreparedData,
    *,
    searcher: Searcher | SearchAlgorithm,
    slots: int,
    name: str,
    callbacks: list[tune.Callback],
    verbose: bool = False,
) -> tune.Tuner:
    """The Tuner of one sweep: `searcher` (from `build_searcher`), scheduler, budgets and storage as
    `cfg.search` says."""
    search = cfg.search
    cost, target = next((c for c in callbacks if isinstance(c, CostBudget)), None), TargetReached.from_config(cfg)
    gates = [gate for gate in (target.open if target else None, cost.room_for_next if cost else None) if gate]
    search_alg = limit_trials(
        searcher,
        slots=slots,
        max_trials=search.max_trials,
        hyperband=search.scheduler == "hyperband",
        gate=(lambda: all(gate() for gate in gates)) if gates else None,
    )
    stoppers = [s for s in (target, cost) if s is not None]
    return tune.Tuner(
        trainable(cfg, data),
        param_space=build_param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=search.metric,
            mode=search.mode,
            search_alg=search_alg,
            scheduler=build_scheduler(cfg),
            num_samples=search.num_samples,
            time_budget_s=search.time_budget_s,
            reuse_actors=True,  # a new worker process per trial re-imports torch: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=as_uri(cfg.storage.path),
            callbacks=[*callbacks, *result_loggers(cfg)],
            stop=CombinedStopper(*stoppers) if len(stoppers) > 1 else (stoppers or [None])[0],
            verbose=2 if verbose else 0,
            # A trial whose worker or node died restarts from its last checkpoint (its MLflow run continues);
            # one that would fail the same way again does not (retry_policy.py).
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures or 0),
            checkpoint_config=checkpoint_config(cfg),
        ),
    )


def fit_or_interrupt(tuner: tune.Tuner) -> tune.ResultGrid:
    """`tuner.fit()`, raising KeyboardInterrupt when Tune returned early because of Ctrl-C.

    Tune catches the first Ctrl-C itself, saves the experiment and returns the results as if the sweep were
    done; the saved experiment then still holds trials neither finished nor failed. (A time budget or a
    reached target ends trials before that last save.)
    """
    retry_policy.install()  # a failure that would happen again is not retried (retry_policy.py)
    results = tuner.fit()
    saved = tune.ExperimentAnalysis(results.experiment_path).trials
    if any(trial.status not in ("TERMINATED", "ERROR") for trial in saved):
        raise KeyboardInterrupt(f"interrupted; resume with: lstm-ray resume {results.experiment_path}")
    return results


def reevaluated(
    cfg: ExperimentConfig,
    data: PreparedData,
    results: tune.ResultGrid,
    tracker: SweepTracker | UntrackedSweep,
    slots: int,
) -> Reevaluation | None:
    """The top-k re-evaluation `search.reevaluate` asks for, or None (also when no trial has a score)."""
    if cfg.search.reevaluate is None or not scored_trials(results, cfg.search.metric):
        return None
    return reevaluate(cfg, results, trainable=trainable(cfg, data), tracker=tracker, slots=slots)
