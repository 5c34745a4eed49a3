"""The Pareto front of a multi-objective sweep (search.objectives) as the report draws it: each trial at its best
epoch of search.metric (the checkpoint the sweep keeps, as pareto.json has it), and which trials are on the front.

    objectives = objectives_of(flat_params)                       # [("val_rmse", "min"), ("latency_ms", "min")]
    values = values_at_best(history, "val_rmse", "min", objectives, {"model_parameters": 1234.0})
    table = front_table({"t1": values, ...}, objectives, recorded_front)   # one row per trial, `on_front`

From MLflow the front is what the sweep recorded (pareto.json on the parent run, else the `lstm_ray.pareto` tags
of the trial runs); a sweep read from Tune's results, or one that recorded neither, has it computed here by the
same non-dominated sort (`search/pareto.py`).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lstm_ray.search.pareto import Objective, pareto_front
from lstm_ray.tracking.sweep import PARETO_ARTIFACT, TAG_PARETO


def objectives_of(flat: Mapping[str, Any]) -> list[Objective]:
    """search.objectives as (metric, mode) pairs from a config's dotted keys (its parent run's params parsed);
    [] for a sweep of one objective, or a param that does not read as a list of {metric, mode}."""
    raw = flat.get("search.objectives") or []
    if not isinstance(raw, list):
        return []
    pairs = [(o.get("metric"), o.get("mode")) for o in raw if isinstance(o, dict)]
    return [(str(m), str(d)) for m, d in pairs if m and d in ("min", "max")] if len(pairs) == len(raw) else []


def values_at_best(
    frame: pd.DataFrame, metric: str, mode: str, objectives: Sequence[Objective], constants: Mapping[str, float]
) -> dict[str, float]:
    """Each objective's value on the trial's first epoch with its best finite `metric` (one row of `frame` per
    epoch); an objective not in `frame`, or NaN there, from `constants` (a size logged once). {} when the trial
    never reported a finite `metric`."""
    if metric not in frame:
        return {}
    scores = pd.to_numeric(frame[metric], errors="coerce").astype(float)
    scores = scores[scores.map(math.isfinite)]
    if scores.empty:
        return {}
    best = frame.loc[scores.idxmin() if mode == "min" else scores.idxmax()]
    values = {}
    for name, _ in objectives:
        value = pd.to_numeric(best.get(name), errors="coerce")
        value = float(value) if value is not None and pd.notna(value) else float(constants.get(name, math.nan))
        values[name] = value
    return values


def score_at_best(
    trials: Sequence[Any], metric: str, mode: str, objectives: Sequence[Objective], logged: Mapping[str, Mapping]
) -> None:
    """Set each trial record's `objectives` from its MLflow history (`values_at_best`); a size from its run's
    `model_parameters`, else from its row of pareto.json in `logged` (an older sweep logged no latency_ms per
    epoch, only on its front)."""
    for trial in trials:
        sizes = dict(logged.get(trial.trial_id, {}))
        if math.isfinite(trial.model_parameters):
            sizes["model_parameters"] = trial.model_parameters
        trial.objectives = values_at_best(trial.history, metric, mode, objectives, sizes)


def front_table(
    values: Mapping[str, Mapping[str, float]], objectives: Sequence[Objective], recorded: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per trial with values (trial id -> objective -> value): trial_id, each objective and `on_front`,
    the recorded front's trial ids when given, else the non-dominated trials. Empty without objectives."""
    names = [name for name, _ in objectives]
    rows = [{"trial_id": trial_id, **{n: trial.get(n, math.nan) for n in names}} for trial_id, trial in values.items()]
    table = pd.DataFrame(rows, columns=["trial_id", *names])
    if table.empty or not names:
        return table.assign(on_front=pd.Series(dtype=bool))
    if recorded is None:
        front = {table["trial_id"].iloc[i] for i in pareto_front(table[names].to_dict("records"), objectives)}
    else:
        front = set(recorded)
    return table.assign(on_front=table["trial_id"].isin(front))


def recorded_front(client: Any, parent_run_id: str, tags: Mapping[str, Mapping[str, str]]) -> tuple[list | None, dict]:
    """(the front's trial ids as the sweep recorded them, {trial id: its pareto.json row}): from the parent run's
    PARETO_ARTIFACT, else from the trial runs' `lstm_ray.pareto` tags (`tags`: trial id -> its run's tags);
    (None, {}) when the sweep recorded neither."""
    if PARETO_ARTIFACT in {info.path for info in client.list_artifacts(parent_run_id)}:
        with tempfile.TemporaryDirectory() as folder:
            logged = json.loads(Path(client.download_artifacts(parent_run_id, PARETO_ARTIFACT, folder)).read_text())
        rows = {str(row["trial_id"]): row for row in logged.get("front", [])}
        return list(rows), rows
    tagged = [trial_id for trial_id, run_tags in tags.items() if run_tags.get(TAG_PARETO) == "true"]
    return (tagged or None), {}
