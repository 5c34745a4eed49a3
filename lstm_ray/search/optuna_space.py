"""Optuna searchers (TPE, Gaussian process) over a define-by-run space, told about early stops by epochs.

A conditional dimension is asked for only when its condition holds, so Optuna never sees inactive values.
Each epoch's best-so-far value is reported as an intermediate value; a trial a scheduler stopped before
`train.max_epochs` is told as *pruned*, which Optuna's TPE ranks after complete trials by the epoch it
reached and then by that value (see `fidelity.py`); the Gaussian process learns from complete trials only.
Warm-start points are added to the study before Ray's `OptunaSearch` opens it.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from ray.tune.search.optuna import OptunaSearch

from lstm_ray.config.space import Distribution
from lstm_ray.search.fidelity import SearchSetup, TrialFidelities

STUDY = "lstm-ray"


class OptunaSpace:
    """The define-by-run function: asks for each active dimension, parents before their children.

    A class rather than a closure because Ray pickles the searcher (and this) with plain pickle.
    """

    def __init__(self, space: dict[str, Distribution]):
        self.space = dict(sorted(space.items(), key=lambda item: bool(item[1].when)))

    def __call__(self, trial: Any) -> None:
        values: dict[str, Any] = {}
        for path, dist in self.space.items():
            if dist.is_active(values):
                values[path] = suggest(trial, path, dist)


class EpochAwareOptunaSearch(OptunaSearch):
    def __init__(self, setup: SearchSetup, *, sampler: Any):
        self.max_epochs = setup.max_epochs
        self.fidelities = TrialFidelities(setup.metric, setup.mode)
        storage = optuna.storages.InMemoryStorage()
        direction = "minimize" if setup.mode == "min" else "maximize"
        study = optuna.create_study(storage=storage, study_name=STUDY, direction=direction, sampler=sampler)
        for point in setup.known:
            study.add_trial(_finished_trial(setup.space, point, setup.max_epochs))
        super().__init__(
            space=OptunaSpace(setup.space),
            metric=setup.metric,
            mode=setup.mode,
            sampler=sampler,
            storage=storage,
            study_name=STUDY,
            points_to_evaluate=list(setup.points) or None,
        )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        fidelity = self.fidelities.heard(trial_id, result)
        if fidelity.best == fidelity.best:  # not NaN: Optuna keeps one intermediate value per epoch
            super().on_trial_result(trial_id, result | {self.metric: fidelity.best})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        fidelity = self.fidelities.ended(trial_id, result, error)
        if fidelity is not None:
            if fidelity.reached(self.max_epochs) < self.max_epochs or fidelity.best != fidelity.best:
                result = None  # Ray tells Optuna "pruned" when there is no value and no error
            else:
                result = {self.metric: fidelity.best}
        super().on_trial_complete(trial_id, result, error)


def suggest(trial: Any, path: str, dist: Distribution) -> Any:
    """Ask `trial` for one value through its public suggest_* methods (Ray records what they return)."""
    spec = optuna_distribution(dist)
    if isinstance(spec, CategoricalDistribution):
        return trial.suggest_categorical(path, spec.choices)
    if isinstance(spec, IntDistribution):
        return trial.suggest_int(path, spec.low, spec.high)
    return trial.suggest_float(path, spec.low, spec.high, log=spec.log, step=spec.step)


def optuna_distribution(dist: Distribution) -> Any:
    args = dist.args
    if dist.kind == "choice":
        return CategoricalDistribution(list(args))
    if dist.kind in ("uniform", "loguniform"):
        return FloatDistribution(float(args[0]), float(args[1]), log=dist.kind == "loguniform")
    if dist.kind == "quniform":
        low, high, step = args
        return FloatDistribution(float(low), float(low + step * ((high - low) // step)), step=float(step))
    if dist.kind == "randint":
        return IntDistribution(int(args[0]), int(args[1]) - 1)
    raise ValueError(f"Optuna cannot search {dist.kind!r} dimensions; use choice instead of grid")


def _finished_trial(space: dict[str, Distribution], point: Any, max_epochs: int) -> Any:
    distributions = {path: optuna_distribution(space[path]) for path in point.params}
    complete = point.epochs >= max_epochs
    return create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED,
        value=point.best if complete else None,
        params=point.params,
        distributions=distributions,
        intermediate_values={point.epochs: point.best},
    )
