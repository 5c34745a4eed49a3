"""The checks that span sections: a value is valid on its own (each section's `check()`), but is it valid
with the rest of the config? The metric against the task, the search space against the fields it names and the
searcher (never one that scores trials on different targets), `points_to_evaluate` against the space, the
scheduler against the searcher, the name as a folder.

    check_name(cfg.name); check_values(cfg); check_search(cfg)  # what parse_config runs, in this order

Each raises `ConfigError` naming the key, the bad value and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from lstm_ray.config.objectives import check_objectives
from lstm_ray.config.pick import check_pick
from lstm_ray.config.schema import (
    FRAME_KEYS,
    MODEL_BASED,
    PBT_MUTABLE,
    PREPARED_KEYS,
    SECTIONS,
    TASK_METRICS,
    WINDOW_KEYS,
    ExperimentConfig,
)
from lstm_ray.config.space import Distribution, parse_distribution, same_value
from lstm_ray.config.strict import build, suggest
from lstm_ray.errors import ConfigError, shown

# The longest folder a sweep names, `<name>-20261123-191407-reevaluation`, must fit file systems' 255-byte limit.
MAX_NAME_BYTES = 255 - len("-20261123-191407-reevaluation")
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "mock")  # what pyarrow opens
MLFLOW_NAMED_STORES = ("databricks", "databricks-uc", "uc")  # tracking URIs without a scheme that are no path
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def check_name(name: str) -> None:
    """The name becomes a folder under storage.path (`<name>-<timestamp>`): it must be one plain path part whose
    UTF-8 bytes fit the file system's name limit."""
    if not name.strip():
        raise ConfigError("name", "is required; give the sweep a short name such as co2-lstm")
    if name in (".", "..") or "/" in name or "\\" in name or not name.isprintable():
        raise ConfigError(
            "name",
            f"{shown(name)} names the results folder, so it must be one plain name without '/', '\\' or control "
            "characters; use e.g. co2-lstm",
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(
            "name",
            f"{shown(name)} is {len(name.encode())} bytes in UTF-8; it names the results folder (with a timestamp "
            f"appended), which file systems limit to 255 bytes, so use at most {MAX_NAME_BYTES} bytes, e.g. co2-lstm",
        )


def check_storage_path(key: str, path: str) -> None:
    """A results folder (storage.path, --storage): a local folder or a URI pyarrow opens; not an existing file."""
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme and scheme not in STORAGE_SCHEMES:
        raise ConfigError(
            key,
            f"{shown(path)} has an unknown scheme {scheme}://; use a local folder or one of "
            f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}",
        )
    local = Path(path.removeprefix("file://")) if scheme in ("", "file") else None
    if local is not None and local.exists() and not local.is_dir():
        raise ConfigError(key, f"{shown(path)} is a file, not a folder; name the results folder")


def check_tracking_uri(uri: str) -> None:
    """MLflow 3's file store (file:, or a plain path) refuses to log: a sweep could not write its runs."""
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme == "file" or (not scheme and uri not in MLFLOW_NAMED_STORES):
        what = "a file store" if scheme else "a plain path, which MLflow opens as a file store"
        raise ConfigError(
            "tracking.uri",
            f"{shown(uri)} is {what}, and MLflow 3 refuses to log to file stores; use sqlite:///path/mlflow.db "
            "(or http://HOST:5000 for a server)",
        )


def check_tracking_scheme(uri: str) -> None:
    """A URI scheme MLflow has a store for (as MLflow reads it: `postgresql+psycopg2` is postgresql, a one-letter
    scheme a Windows drive); `file:` and plain paths are left to `check_tracking_uri`."""
    found = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri)
    scheme = found.group(1).lower().split("+")[0] if found and len(found.group(1)) > 1 else ""
    if scheme not in ("", "file", *TRACKING_SCHEMES):
        hint = suggest(scheme, list(TRACKING_SCHEMES))
        raise ConfigError(
            "tracking.uri",
            f"{shown(uri)} has the scheme {shown(scheme)}, which MLflow has no store for; use one of "
            f"{', '.join(TRACKING_SCHEMES)}, e.g. sqlite:///mlflow.db or http://HOST:5000{hint}",
        )


def check_values(cfg: ExperimentConfig) -> None:
    """Every section's values, and the rules that span sections."""
    for section in SECTIONS:
        getattr(cfg, section).check()
    check_storage_path("storage.path", cfg.storage.path)
    if cfg.tracking.enabled:
        check_tracking_uri(cfg.tracking.uri)
        check_tracking_scheme(cfg.tracking.uri)
    if cfg.train.tbptt and cfg.model.bidirectional:
        raise ConfigError(
            "train.tbptt",
            "cannot truncate a bidirectional model, whose backward pass reads the "
            "future; set train.tbptt: 0 or model.bidirectional: false",
        )


def check_search(cfg: ExperimentConfig) -> None:
    """The search section against the rest: every dimension of the space, its conditions and the
    `points_to_evaluate` against the config fields they name, then the metric, the scheduler, the budgets and
    warm start against the task and the searcher."""
    search = cfg.search
    space = {path: parse_distribution(f"search.space.{path}", spec) for path, spec in search.space.items()}
    if search.algorithm == "grid" and not space:
        raise ConfigError("search.space", "grid search needs at least one dimension; add e.g. model.hidden_size")
    for path, dist in space.items():
        _check_dimension(cfg, path, dist)
        _check_conditions(cfg, path, dist, space)
    for i, point in enumerate(search.points_to_evaluate):
        _check_point(cfg, f"search.points_to_evaluate[{i}]", point, space)
    _check_metric(cfg)
    check_objectives(cfg)
    check_pick(cfg)
    _check_highway(cfg, space)
    _check_scheduler(cfg, space)
    _check_budgets(cfg)
    _check_split_batch(cfg, space)
    warm_startable = [name for name in MODEL_BASED if name != "nsga2"]  # NSGA-II breeds only its own generations
    if search.warm_start and search.algorithm not in warm_startable:
        raise ConfigError(
            "search.warm_start",
            f"{search.algorithm} search does not learn from earlier sweeps; use {', '.join(warm_startable)} or drop it",
        )
    for i, name in enumerate(search.warm_start):
        if not name.strip():
            raise ConfigError(f"search.warm_start[{i}]", "must name an MLflow experiment or a sweep's parent run id")


def _check_dimension(cfg: ExperimentConfig, path: str, dist: Distribution) -> None:
    key, algorithm = f"search.space.{path}", cfg.search.algorithm
    _check_search_path(cfg, key, path)
    _check_comparable(key, path, dist)
    if algorithm in MODEL_BASED and dist.kind == "grid":
        raise ConfigError(
            key, f"grid dimensions cannot be mixed with {algorithm}; use {{choice: [...]}} or search.algorithm: grid"
        )
    if algorithm == "grid" and not dist.is_finite:
        raise ConfigError(key, f"grid search needs a finite set of values, got {dist.kind}; use {{grid: [...]}}")
    if path in (*WINDOW_KEYS, *PREPARED_KEYS, *FRAME_KEYS) and not dist.is_finite:
        raise ConfigError(
            key,
            f"{path} must be searched over a finite set so windows are built once per value; use {{choice: [...]}}",
        )
    for value in dist.representative_values():
        _check_value(cfg, key, path, value)
    _check_rounded_ends(cfg, key, path, dist)


def _check_rounded_ends(cfg: ExperimentConfig, key: str, path: str, dist: Distribution) -> None:
    """A quniform draw is rounded to a multiple of q, which can leave the field's range (an lr of 0.0, a dropout
    of 1.0); Ray Tune's random search also refuses bounds that are not multiples of q."""
    for (end, value), bound in zip(dist.rounded_ends(), dist.args[:2], strict=False):
        try:
            _check_value(cfg, key, path, value)
        except ConfigError as err:
            detail = str(err).removeprefix(f"{key}: value {value!r} is not valid for {path}: ")
            raise ConfigError(
                key,
                f"quniform {list(dist.args)} rounds its {end} end to {value!r} (round(x / q) * q), not valid for "
                f"{path}: {detail}; make low and high multiples of q that are valid values",
            ) from None
        q = dist.args[2]
        if cfg.search.algorithm == "random" and not math.isclose(bound / q, round(bound / q)):
            raise ConfigError(
                key, f"random search needs quniform's low and high to be multiples of q {q!r}, got {end} {bound!r}"
            )


def _check_conditions(cfg: ExperimentConfig, path: str, dist: Distribution, space: dict[str, Distribution]) -> None:
    key = f"search.space.{path}.when"
    if dist.when and (cfg.search.algorithm == "grid" or any(d.kind == "grid" for d in space.values())):
        raise ConfigError(key, "a grid cannot skip combinations; use search.algorithm random, hyperopt or optuna")
    searched = [parent for parent, _ in dist.when if parent in space]
    if len(searched) > 1:
        raise ConfigError(key, f"depends on {' and '.join(searched)}; a condition may name one searched dimension")
    for parent, values in dist.when:
        where = f"{key}.{parent}"
        if parent == path:
            raise ConfigError(where, "a dimension cannot depend on itself")
        section, _, name = parent.partition(".")
        if section not in SECTIONS or name not in [f.name for f in dataclasses.fields(getattr(cfg, section))]:
            raise ConfigError(where, f"{parent!r} names no config field; use e.g. model.head")
        if parent not in space:
            for value in values:
                _check_value(cfg, where, parent, value)
            continue
        options = space[parent]
        if not options.is_finite or options.when:
            raise ConfigError(where, f"{parent} must be an unconditional {{choice: [...]}} to be depended on")
        for value in values:
            if not any(same_value(value, option) for option in options.args):
                searched = shown(list(options.args))
                raise ConfigError(where, f"{shown(value)} is not one of the searched values {searched}")


def _check_point(cfg: ExperimentConfig, key: str, point: dict[str, Any], space: dict[str, Distribution]) -> None:
    algorithm = cfg.search.algorithm
    if algorithm == "grid":
        raise ConfigError(key, "grid search tries every combination already; drop points_to_evaluate or use random")
    for path, value in point.items():
        if path not in space:
            raise ConfigError(f"{key}.{path}", "is not in search.space; add it there or drop it here")
        _check_value(cfg, f"{key}.{path}", path, value)
        if not space[path].contains(value):
            dist = space[path]
            outside = f"{shown(value)} lies outside the searched {dist.kind} {shown(list(dist.args))}"
            raise ConfigError(f"{key}.{path}", outside)
        if not space[path].is_active(_with_base(cfg, space, point)):
            raise ConfigError(f"{key}.{path}", "is inactive for this point (see its `when`); drop it here")
    if algorithm in MODEL_BASED or any(dist.when for dist in space.values()):  # these search a tree of values
        for path, dist in space.items():
            if path not in point and dist.is_active(_with_base(cfg, space, point)):
                raise ConfigError(key, f"misses {path}; {algorithm} needs every searched value of a point")


def _with_base(cfg: ExperimentConfig, space: dict[str, Distribution], point: dict[str, Any]) -> dict[str, Any]:
    """The values conditions are decided on: the point's, then the base config's for paths not searched."""
    paths = {parent for dist in space.values() for parent, _ in dist.when}
    return {p: getattr(getattr(cfg, p.split(".")[0]), p.split(".")[1]) for p in paths if p not in space} | point


def _check_scheduler(cfg: ExperimentConfig, space: dict[str, Distribution]) -> None:
    search = cfg.search
    if search.max_t is not None and search.max_t > cfg.train.max_epochs:
        raise ConfigError("search.max_t", f"must be <= train.max_epochs {cfg.train.max_epochs}, got {search.max_t}")
    if search.brackets > 1 and search.scheduler != "asha":
        raise ConfigError("search.brackets", f"only asha has brackets, the scheduler is {search.scheduler}; drop it")
    if search.scheduler != "pbt":
        return
    if search.algorithm in MODEL_BASED:
        raise ConfigError(
            "search.scheduler",
            f"pbt evolves trials by copying and perturbing them, which {search.algorithm} cannot model; "
            "use search.algorithm: random",
        )
    mutable = [path for path in space if path in PBT_MUTABLE]
    if not mutable:
        raise ConfigError(
            "search.space", f"pbt needs a dimension it can change in a running trial: one of {', '.join(PBT_MUTABLE)}"
        )
    for path in mutable:
        if space[path].when:
            raise ConfigError(f"search.space.{path}.when", "pbt cannot switch a dimension on and off; drop the when")
    if search.perturbation_interval >= cfg.train.max_epochs:
        raise ConfigError(
            "search.perturbation_interval",
            f"must be below train.max_epochs {cfg.train.max_epochs} or pbt never acts, "
            f"got {search.perturbation_interval}",
        )


def _check_highway(cfg: ExperimentConfig, space: dict[str, Distribution]) -> None:
    """model.highway reads the last N target values of a forecast window: N may not exceed any lookback."""
    highways = space["model.highway"].representative_values() if "model.highway" in space else [cfg.model.highway]
    if not max(highways):
        return
    if cfg.data.task == "classify":
        raise ConfigError("model.highway", "applies to forecast only; remove it for task classify")
    lookbacks = space["data.lookback"].representative_values() if "data.lookback" in space else [cfg.data.lookback]
    if max(highways) > min(lookbacks):
        raise ConfigError(
            "model.highway",
            f"reads the last {max(highways)} steps but a window has {min(lookbacks)} (data.lookback); "
            "lower model.highway or raise data.lookback",
        )


def _check_split_batch(cfg: ExperimentConfig, space: dict[str, Distribution]) -> None:
    """Data-parallel workers each train on batch_size / workers windows of every (global) batch."""
    workers = cfg.resources.parallel_workers
    dist = space.get("train.batch_size")
    if workers == 1 or (dist is not None and dist.kind == "quniform" and dist.args[2] % workers == 0):
        return
    if dist is not None and not dist.is_finite:
        raise ConfigError(
            "search.space.train.batch_size",
            f"is split across resources.workers {workers}, so every value must be a multiple of {workers}; "
            f"search a {{choice: [...]}} of multiples, or quniform with q a multiple of {workers}",
        )
    key, values = ("search.space.train.batch_size", dist.args) if dist else ("train.batch_size", [cfg.train.batch_size])
    for value in values:
        if value % workers:
            below, above = max(workers, value // workers * workers), (value // workers + 1) * workers
            raise ConfigError(
                key,
                f"{shown(value)} is the global batch, split across resources.workers {workers}, so it must be a "
                f"multiple of {workers}; use {below:g} or {above:g}",
            )


def _check_budgets(cfg: ExperimentConfig) -> None:
    valid = TASK_METRICS[cfg.data.task]
    for metric, target in cfg.search.stop.items():
        key = f"search.stop.{metric}"
        if metric not in valid:
            raise ConfigError(key, f"{cfg.data.task} trials report {', '.join(valid)}{suggest(metric, list(valid))}")
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
            raise ConfigError(key, f"must be a finite number, got {shown(target)}")


def _check_metric(cfg: ExperimentConfig) -> None:
    metric, mode, task = cfg.search.metric, cfg.search.mode, cfg.data.task
    valid = TASK_METRICS[task]
    if metric not in valid:
        raise ConfigError(
            "search.metric", f"{task} trials report {', '.join(valid)}; got {metric!r}{suggest(metric, list(valid))}"
        )
    if mode != valid[metric]:
        best = "lower" if valid[metric] == "min" else "higher"
        raise ConfigError("search.mode", f"{metric} is better {best}; set search.mode: {valid[metric]}")


def _check_search_path(cfg: ExperimentConfig, key: str, path: str) -> None:
    section, _, name = path.partition(".")
    tunable = [s for s in SECTIONS if s not in ("search", "tracking", "storage", "resources")]
    if section not in tunable or not name:
        raise ConfigError(key, f"must start with one of {', '.join(tunable)} (e.g. model.hidden_size)")
    fields = [f.name for f in dataclasses.fields(getattr(cfg, section))]
    if name not in fields:
        raise ConfigError(key, f"{path!r} names no config field{suggest(name, fields)}")
    if section == "data" and path not in (*WINDOW_KEYS, *PREPARED_KEYS, *FRAME_KEYS):
        raise ConfigError(
            key,
            f"{path} is fixed for the whole sweep (the data is prepared once); only "
            f"{', '.join(k for k in WINDOW_KEYS + PREPARED_KEYS + FRAME_KEYS if k != 'data.horizon')} can be searched: "
            f"run one sweep per {path} value",
        )


def _check_comparable(key: str, path: str, dist: Distribution) -> None:
    """Trials are ranked by their validation scores, so every trial must be scored on the same targets: a
    searched horizon predicts other targets, and `missing: drop` removes rows (a fixed value of either is fine)."""
    if path == "data.horizon":
        raise ConfigError(
            key,
            "searching the horizon changes what each trial is scored on, so trials cannot be compared; "
            "run one sweep per horizon",
        )
    if path == "data.missing" and "drop" in dist.representative_values():
        raise ConfigError(
            key,
            "drop removes rows and so changes the validation targets, so trials cannot be compared; "
            "search interpolate, ffill and mask, or run a separate sweep with missing: drop",
        )


def _check_value(cfg: ExperimentConfig, key: str, path: str, value: Any) -> None:
    """Validate that `value` is acceptable for config field `path` by building its section with it (only the
    section: a copy of the whole config per searched value made a long `choice` take minutes)."""
    section, _, name = path.partition(".")
    current = getattr(cfg, section)
    raw = {f.name: _plain(getattr(current, f.name)) for f in dataclasses.fields(current)} | {name: value}
    try:
        build(type(current), raw, section).check()
    except ConfigError as err:
        detail = str(err).removeprefix(f"{err.key}: ")
        raise ConfigError(key, f"value {shown(value)} is not valid for {path}: {detail}") from None


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
