"""Who proposes configurations: one builder over a registry of search algorithms.

    searcher = build_searcher(cfg, known=warm_start_points(cfg))
    tune.Tuner(..., param_space=build_param_space(cfg), tune_config=TuneConfig(search_alg=searcher))

- `grid`, `random`: Ray's BasicVariantGenerator over Tune domains (random with a conditional space samples
  HyperOpt's tree instead, which leaves inactive dimensions out of a trial).
- `hyperopt`: TPE over a tree-structured HyperOpt space; `n_initial_points` random proposals first;
  `max_history` bounds the trials TPE fits, so proposing stays cheap in sweeps of thousands of trials.
- `optuna`: Optuna's multivariate TPE over a define-by-run space (conditional dimensions are asked only
  when active; with `search.objectives`, multi-objective TPE, `mo_optuna.py`); `nsga2`: Optuna's NSGA-II
  genetic sampler on one objective or on `search.objectives` (`nsga2.py`); `bayesopt`: Optuna's
  Gaussian-process sampler, for small continuous spaces.

Model-based searchers hear about early-stopped trials as `fidelity.py` describes, start from `known`
points (warm start) and try `points_to_evaluate` first. Heavy libraries are imported inside the builders.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher

from lstm_ray.config import MODEL_BASED, ExperimentConfig, dotted_keys
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.config.space import Distribution, resolve_fixed_conditions
from lstm_ray.search.fidelity import SearchSetup


@dataclass
class KnownPoint:
    """A finished trial of an earlier sweep, told to the searcher before it proposes anything."""

    params: dict[str, Any]  # active dotted paths -> values, all inside the current space
    best: float  # its best value of search.metric
    epochs: int  # epochs it trained (its fidelity)


def search_space(cfg: ExperimentConfig) -> dict[str, Distribution]:
    """The parsed space with conditions on fixed config values decided (see `config/space.py`)."""
    base = dotted_keys(cfg.to_dict())
    return resolve_fixed_conditions(cfg.parsed_space(), base)


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


def samples_own_space(cfg: ExperimentConfig) -> bool:
    """Whether the searcher holds the space itself (Tune's param_space then stays empty)."""
    space = search_space(cfg)
    conditional = any(dist.when for dist in space.values())
    return bool(space) and (cfg.search.algorithm in MODEL_BASED or (cfg.search.algorithm == "random" and conditional))


def build_param_space(cfg: ExperimentConfig) -> dict[str, Any]:
    if samples_own_space(cfg):
        return {}
    return {path: to_tune_domain(dist) for path, dist in search_space(cfg).items()}


def build_searcher(cfg: ExperimentConfig, known: Sequence[KnownPoint] = ()) -> Searcher | SearchAlgorithm:
    """The search algorithm `cfg.search.algorithm` names; ValueError lists the valid names.

    With nothing to search (an empty space) every algorithm runs `num_samples` repeats of the base config.
    """
    if cfg.search.algorithm in SEARCHERS and not search_space(cfg):
        return BasicVariantGenerator(random_state=cfg.search.seed)
    try:
        builder = SEARCHERS[cfg.search.algorithm]
    except KeyError:
        raise ValueError(f"unknown search.algorithm {cfg.search.algorithm!r}; valid: {', '.join(SEARCHERS)}") from None
    return builder(cfg, list(known))


def _grid(cfg: ExperimentConfig, known: list[KnownPoint]) -> SearchAlgorithm:
    return BasicVariantGenerator(random_state=cfg.search.seed)


def _random(cfg: ExperimentConfig, known: list[KnownPoint]) -> Searcher | SearchAlgorithm:
    if samples_own_space(cfg):
        from hyperopt import rand

        return _hyperopt_searcher(cfg, known, algo=rand.suggest)
    return BasicVariantGenerator(random_state=cfg.search.seed, points_to_evaluate=cfg.search.points_to_evaluate)


def _hyperopt(cfg: ExperimentConfig, known: list[KnownPoint]) -> Searcher:
    return _hyperopt_searcher(cfg, known, algo=None)


def _hyperopt_searcher(cfg: ExperimentConfig, known: list[KnownPoint], algo: Callable | None) -> Searcher:
    from lstm_ray.search.hyperopt_tree import TreeHyperOptSearch

    search = cfg.search
    return TreeHyperOptSearch(
        search_setup(cfg, known),
        n_initial_points=search.n_initial_points,
        seed=search.seed,
        algo=algo,
        max_history=search.max_history,
    )


def _optuna(cfg: ExperimentConfig, known: list[KnownPoint]) -> Searcher:
    import optuna

    with warnings.catch_warnings():  # `group` (conditional spaces in multivariate TPE) is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # No constant liar: it would count running trials as bad, and ASHA keeps the promising ones running.
        sampler = optuna.samplers.TPESampler(
            seed=cfg.search.seed, n_startup_trials=cfg.search.n_initial_points, multivariate=True, group=True
        )
    if cfg.search.objectives:  # the same TPE on several objectives is MOTPE
        from lstm_ray.search.mo_optuna import MultiObjectiveOptunaSearch

        return MultiObjectiveOptunaSearch(search_setup(cfg, known), objective_pairs(cfg), sampler=sampler)
    return _optuna_searcher(cfg, known, sampler)


def _nsga2(cfg: ExperimentConfig, known: list[KnownPoint]) -> Searcher:
    from lstm_ray.search.nsga2 import nsga2_sampler

    if cfg.search.objectives:
        from lstm_ray.search.mo_optuna import MultiObjectiveOptunaSearch

        return MultiObjectiveOptunaSearch(search_setup(cfg, known), objective_pairs(cfg), sampler=nsga2_sampler(cfg))
    return _optuna_searcher(cfg, known, nsga2_sampler(cfg))


def _bayesopt(cfg: ExperimentConfig, known: list[KnownPoint]) -> Searcher:
    import optuna

    sampler = optuna.samplers.GPSampler(seed=cfg.search.seed, n_startup_trials=cfg.search.n_initial_points)
    return _optuna_searcher(cfg, known, sampler)


def _optuna_searcher(cfg: ExperimentConfig, known: list[KnownPoint], sampler: Any) -> Searcher:
    from lstm_ray.search.optuna_space import EpochAwareOptunaSearch

    return EpochAwareOptunaSearch(search_setup(cfg, known), sampler=sampler)


def search_setup(cfg: ExperimentConfig, known: Sequence[KnownPoint]) -> SearchSetup:
    """What a model-based searcher is built with (see `fidelity.SearchSetup`)."""
    search = cfg.search
    return SearchSetup(
        search_space(cfg), search.metric, search.mode, cfg.train.max_epochs, search.points_to_evaluate, known
    )


SEARCHERS: dict[str, Callable[[ExperimentConfig, list[KnownPoint]], Searcher | SearchAlgorithm]] = {
    "grid": _grid,
    "random": _random,
    "hyperopt": _hyperopt,
    "optuna": _optuna,
    "nsga2": _nsga2,
    "bayesopt": _bayesopt,
}
