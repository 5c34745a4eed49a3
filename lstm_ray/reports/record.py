"""What a report is drawn from: one sweep's trials, read from Tune's results or back from MLflow.

    record = SweepRecord.from_mlflow(client, parent_run_id)    # or SweepRecord.from_results(cfg, results, data)
    record.leaderboard()                                       # one row per trial, best first
    importance(record)                                         # {"train.lr": 0.82, "model.hidden_size": 0.05}
    importance_hidden(record)                                  # {"model.cell": "needs 3+ scored trials ..."}

The same `SweepRecord` gives the leaderboard table logged to the parent run and everything `page.py` draws,
beside the naive baselines the sweep scored on the same windows (`baselines`, `forecast`, `best_baseline`).
"""

from __future__ import annotations

import ast
import math
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml

from lstm_ray import outcomes
from lstm_ray.config import ExperimentConfig, apply_params, dotted_keys
from lstm_ray.config.objectives import objective_pairs
from lstm_ray.data.windows import window_setting
from lstm_ray.reports.front import front_table, objectives_of, recorded_front, score_at_best, values_at_best
from lstm_ray.search.fidelity import asha_rungs
from lstm_ray.tracking.callbacks import EPOCH_SECONDS
from lstm_ray.tracking.runs import (
    BASELINE_PREFIX,
    FORECAST_ARTIFACT,
    TAG_BEST_BASELINE,
    TAG_OUTCOME,
    TAG_TRIAL_ID,
    child_runs,
)


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]  # the searched hyperparameters (dotted config paths)
    history: pd.DataFrame  # one row per epoch: epoch, train_loss, val_* ... (from MLflow also epoch_seconds)
    outcome: str  # outcomes.COMPLETED | STOPPED_EARLY | FAILED
    run_id: str = ""  # its MLflow child run
    model_parameters: float = math.nan  # trainable parameters of its network
    train_windows: float = math.nan  # training windows (classify: sequences) its window setting cut
    objectives: dict[str, float] = field(default_factory=dict)  # search.objectives at its best search.metric epoch


@dataclass
class SweepRecord:
    """Everything a report needs about one sweep, from Tune's results or from MLflow."""

    name: str
    metric: str
    mode: str
    scheduler: str
    grace_period: int
    reduction_factor: int
    max_epochs: int
    base: dict[str, Any]  # the config's own values (dotted paths) for what a trial did not search
    max_t: int = 0  # ASHA's last rung (search.max_t); 0: max_epochs
    train_rows: int = 0  # rows (classify: sequences) in the training split
    trials: list[TrialRecord] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)  # "last_value.val_rmse" -> 0.94 (no "baseline.")
    forecast: pd.DataFrame | None = None  # the winner's and best baseline's test forecasts (FORECAST_ARTIFACT)
    best_baseline: str = ""  # the baseline in `forecast`, e.g. "last_value"
    objectives: list[tuple[str, str]] = field(default_factory=list)  # search.objectives as (metric, mode)
    front: list[str] | None = None  # the Pareto front's trial ids as MLflow recorded them; None: computed

    @classmethod
    def from_results(
        cls,
        cfg: ExperimentConfig,
        results: Any,
        data: Any,
        baselines: dict[str, float] | None = None,
        forecast: pd.DataFrame | None = None,
        best_baseline: str = "",
    ) -> SweepRecord:
        """From a Ray Tune ResultGrid and the sweep's PreparedData (at the end of a sweep, MLflow not needed).

        `baselines` maps "<name>.<split>_<metric>" to a value; a leading "baseline." (the MLflow metric's name)
        is dropped. `forecast` is the frame of FORECAST_ARTIFACT, `best_baseline` the baseline it holds.
        """
        trials = []
        for result in results:
            frame = result.metrics_dataframe
            if frame is None or frame.empty or "trial_id" not in frame:
                continue
            columns = ["epoch"] + [c for c in frame.columns if c.startswith(("train_", "val_"))]
            history = frame[columns].drop_duplicates("epoch", keep="last").sort_values("epoch")
            last = frame.iloc[-1].to_dict()
            outcome = outcomes.outcome_of(last, cfg.train.max_epochs, result.error is not None)
            trial = TrialRecord(
                str(frame["trial_id"].iloc[-1]), dict(result.config), history.reset_index(drop=True), outcome
            )
            trial.model_parameters, trial.train_windows = trial_size(apply_params(cfg, trial.params), data)
            sizes = {"model_parameters": trial.model_parameters}
            trial.objectives = values_at_best(frame, cfg.search.metric, cfg.search.mode, objective_pairs(cfg), sizes)
            trials.append(trial)
        train_rows = data.split_sizes()["train"]
        return cls(
            **_settings(dotted_keys(cfg.to_dict())),
            train_rows=train_rows,
            trials=trials,
            baselines={key.removeprefix(BASELINE_PREFIX): float(v) for key, v in (baselines or {}).items()},
            forecast=forecast,
            best_baseline=best_baseline,
            objectives=objective_pairs(cfg) if cfg.search.objectives else [],
        )

    @classmethod
    def from_mlflow(cls, client: Any, parent_run_id: str) -> SweepRecord:
        """From the parent run and its child runs in MLflow: baselines from the parent's "baseline." metrics
        and TAG_BEST_BASELINE, `forecast` from its FORECAST_ARTIFACT (None when the sweep logged none)."""
        parent = client.get_run(parent_run_id)
        flat = {k: _parse(v) for k, v in parent.data.params.items()}
        children = child_runs(client, parent.info.experiment_id, parent_run_id)
        trials, tags = [], {}
        for run_id in children.values():
            run = client.get_run(run_id)
            tags[run.data.tags[TAG_TRIAL_ID]] = run.data.tags
            series = {
                key: {m.step: m.value for m in client.get_metric_history(run_id, key)}
                for key in run.data.metrics
                if is_per_epoch(key)
            }
            history = pd.DataFrame(series).rename_axis("epoch").reset_index().sort_values("epoch")
            params = {k: _parse(v) for k, v in run.data.params.items()}
            outcome = run.data.tags.get(TAG_OUTCOME, outcomes.FAILED)
            size = [run.data.metrics.get(key, math.nan) for key in ("model_parameters", "train_windows")]
            trials.append(TrialRecord(run.data.tags[TAG_TRIAL_ID], params, history, outcome, run_id, *size))
        objectives = objectives_of(flat)
        front, logged = recorded_front(client, parent_run_id, tags) if objectives else (None, {})
        score_at_best(trials, flat["search.metric"], flat["search.mode"], objectives, logged)
        metrics = parent.data.metrics
        return cls(
            **_settings(flat),
            train_rows=int(metrics.get("train_rows", 0)),
            trials=sorted(trials, key=lambda t: t.trial_id),
            objectives=objectives,
            front=front,
            baselines={k.removeprefix(BASELINE_PREFIX): v for k, v in metrics.items() if k.startswith(BASELINE_PREFIX)},
            forecast=_read_forecast(client, parent_run_id),
            best_baseline=parent.data.tags.get(TAG_BEST_BASELINE, ""),
        )

    @property
    def searched(self) -> list[str]:
        return sorted({key for trial in self.trials for key in trial.params})

    @property
    def task(self) -> str:
        """`forecast` or `classify` (data.task), which names what a training example is."""
        return str(self.base.get("data.task") or "forecast")

    @property
    def train_unit(self) -> str:
        """What `train_rows` and `train_windows` count: a classify example is one sequence, a forecast one is
        a window cut from the rows of one series."""
        return "sequences" if self.task == "classify" else "windows"

    def rungs(self) -> list[int]:
        return asha_rungs(self.scheduler, self.grace_period, self.reduction_factor, self.max_t or self.max_epochs)

    def cutoffs(self) -> dict[int, float]:
        """Each rung's cut-off over every trial that reached it: ASHA keeps 1 in reduction_factor above it.

        ASHA decides against the trials seen so far, so early decisions used fewer values than this.
        """
        share = 100 / self.reduction_factor if self.mode == "min" else 100 - 100 / self.reduction_factor
        out = {}
        for rung in self.rungs():
            values = [_at_epoch(t.history, self.metric, rung) for t in self.trials]
            values = [v for v in values if np.isfinite(v)]
            if values:
                out[rung] = float(np.percentile(values, share))
        return out

    def baseline_scores(self) -> pd.DataFrame:
        """One row per baseline with a validation value of the sweep's metric: baseline, val and test values
        (NaN where the test value was not logged), best first."""
        test_metric = "test_" + self.metric.removeprefix("val_")
        suffix = f".{self.metric}"
        rows = [
            {
                "baseline": key.removesuffix(suffix),
                self.metric: value,
                test_metric: self.baselines.get(key.removesuffix(suffix) + f".{test_metric}", math.nan),
            }
            for key, value in self.baselines.items()
            if key.endswith(suffix)
        ]
        board = pd.DataFrame(rows, columns=["baseline", self.metric, test_metric])
        return board.sort_values(self.metric, ascending=self.mode == "min").reset_index(drop=True)

    def pareto(self) -> pd.DataFrame:
        """search.objectives: one row per trial scored on them (trial_id, each objective at its best epoch of
        the metric, on_front); empty for a sweep of one objective."""
        scored = {t.trial_id: t.objectives for t in self.trials if t.objectives}
        return front_table(scored, self.objectives, self.front) if self.objectives else pd.DataFrame()

    def setting(self, trial: TrialRecord, key: str) -> Any:
        return trial.params.get(key, self.base.get(key))

    def leaderboard(self) -> pd.DataFrame:
        """One row per trial, best first: outcome, epochs, rung reached, best score, size, hyperparameters."""
        rungs = self.rungs()
        rows = []
        for trial in self.trials:
            curve = trial.history[self.metric] if self.metric in trial.history else pd.Series(dtype=float)
            best = _best(curve.to_numpy(dtype=float), self.mode)
            epochs = int(trial.history["epoch"].max()) if len(trial.history) else 0
            rows.append(
                {
                    "trial_id": trial.trial_id,
                    "outcome": trial.outcome,
                    "epochs": epochs,
                    "rung_reached": max([r for r in rungs if r <= epochs], default=0),
                    f"best_{self.metric}": best,
                    "model_parameters": trial.model_parameters,
                    "train_windows": trial.train_windows,
                    **{key: self.setting(trial, key) for key in self.searched},
                    "run_id": trial.run_id,
                }
            )
        board = pd.DataFrame(rows)
        if board.empty:
            return board
        board = board.sort_values(f"best_{self.metric}", ascending=self.mode == "min", na_position="last")
        board.insert(0, "rank", range(1, len(board) + 1))
        return board.reset_index(drop=True)


SIZES = ("model_parameters", "train_windows")  # a trial's size, logged once at step 0 when it ends
PER_EPOCH = (EPOCH_SECONDS, "latency_ms")  # logged with each epoch besides the train_* and val_* curves


def is_per_epoch(key: str) -> bool:
    """Whether a trial run's metric `key` is one value per epoch (a history column), not one of its SIZES."""
    return key not in SIZES and (key.startswith(("train_", "val_")) or key in PER_EPOCH)


def trial_size(cfg: ExperimentConfig, data: Any) -> tuple[float, float]:
    """(trainable parameters, training windows) of a trial whose resolved config is `cfg`.

    The network is built on torch's meta device: shapes only, no memory, no time.
    """
    import torch

    from lstm_ray.train.models import build_model

    classify = data.task == "classify"
    with torch.device("meta"):
        model = build_model(
            cfg.model,
            len(data.input_index),
            len(data.target_index),
            cfg.data.horizon,
            n_classes=data.n_classes if classify else 0,
            frame=data.window_frame(cfg.data),
        )
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return float(parameters), float(len(data.windows(window_setting(cfg))["train"]))


MIN_TRIALS_PER_GROUP = 3  # a group mean of fewer trials is mostly that trial's noise
MIN_GROUPS = 2  # one group explains nothing
MAX_BINS = 4  # continuous values: quantile bins, as many as MIN_TRIALS_PER_GROUP allows, at most this many


def importance(record: SweepRecord) -> dict[str, float]:
    """Share of the variance of trials' best scores explained by each hyperparameter alone (η², in [0, 1]), for
    the parameters whose settings fall in at least MIN_GROUPS groups of MIN_TRIALS_PER_GROUP scored trials.

    A parameter's groups are its settings (`_group_labels`), or quantile bins of MIN_TRIALS_PER_GROUP or more
    trials for a continuous one; trials in groups smaller than that are left out of its η². With one
    trial per group η² is 1.0 whatever the data, hence the minimum. Scores that do not vary give 0.
    `importance_hidden` says why the other searched parameters are missing.
    """
    scores, groups = _importance_groups(record)
    out = {}
    for key, labels in groups.items():
        if labels.nunique() < MIN_GROUPS:
            continue
        y = scores[labels.index]
        total = float(((y - y.mean()) ** 2).sum())
        means = y.groupby(labels, observed=True).transform("mean")
        out[key] = float(((means - y.mean()) ** 2).sum() / total) if total > 0 else 0.0
    return out


def importance_hidden(record: SweepRecord) -> dict[str, str]:
    """Searched parameter -> why `importance` leaves it out (too few trials in too few groups); {} when none."""
    scores, groups = _importance_groups(record)
    need = f"needs {MIN_TRIALS_PER_GROUP}+ scored trials in each of {MIN_GROUPS}+ settings"
    return {
        key: f"{need}; has {labels.nunique()} such setting(s) among {len(scores)} scored trials"
        for key, labels in groups.items()
        if labels.nunique() < MIN_GROUPS
    }


def chance_importance(record: SweepRecord, key: str) -> float:
    """η² a parameter with no effect reaches on average, (groups - 1) / (trials - 1): bars near it say nothing."""
    _, groups = _importance_groups(record)
    labels = groups[key]
    return (labels.nunique() - 1) / max(len(labels) - 1, 1)


def _importance_groups(record: SweepRecord) -> tuple[pd.Series, dict[str, pd.Series]]:
    """(best score of each scored trial, {parameter: its group label per trial, only groups big enough})."""
    board = record.leaderboard()
    score_key = f"best_{record.metric}"
    if board.empty:
        return pd.Series(dtype=float), {key: pd.Series(dtype=str) for key in record.searched}
    scored = board[np.isfinite(board[score_key].astype(float))]
    groups = {}
    for key in record.searched:
        labels = _group_labels(scored[key])
        counts = labels.value_counts()
        groups[key] = labels[labels.map(counts) >= MIN_TRIALS_PER_GROUP]
    return scored[score_key].astype(float), groups


def _group_labels(values: pd.Series) -> pd.Series:
    """One group label per trial: the setting itself (a choice: text, or at most 6 numbers that repeat), or the
    quantile bin of a continuous number such as a learning rate each trial samples anew."""
    bins = min(MAX_BINS, len(values) // MIN_TRIALS_PER_GROUP)
    numeric = pd.to_numeric(values, errors="coerce")
    distinct = values.nunique()
    if numeric.isna().any() or distinct <= min(6, len(values) - 1) or bins < MIN_GROUPS:
        return values.astype(str)
    return pd.qcut(numeric.astype(float), bins, duplicates="drop").astype(str)


def _settings(flat: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": str(flat.get("name", "")),
        "metric": str(flat["search.metric"]),
        "mode": str(flat["search.mode"]),
        "scheduler": str(flat["search.scheduler"]),
        "grace_period": int(flat["search.grace_period"]),
        "reduction_factor": int(flat["search.reduction_factor"]),
        "max_epochs": int(flat["train.max_epochs"]),
        "max_t": int(flat.get("search.max_t") or 0),
        "base": flat,
    }


def _read_forecast(client: Any, run_id: str) -> pd.DataFrame | None:
    """The run's FORECAST_ARTIFACT as a frame, or None when the run has no such artifact."""
    if FORECAST_ARTIFACT not in {info.path for info in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        return pd.read_csv(client.download_artifacts(run_id, FORECAST_ARTIFACT, folder))


def _parse(text: str) -> Any:
    """An MLflow param string (Python's str of the value) back to the value: numbers, booleans, None, lists,
    mappings (`search.budget` as {'usd': 0.4, 'gpu_hours': None}); other text as YAML reads it."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _at_epoch(history: pd.DataFrame, metric: str, epoch: int) -> float:
    if metric not in history:
        return math.nan
    row = history.loc[history["epoch"] == epoch, metric]
    return float(row.iloc[0]) if len(row) else math.nan


def _best(values: np.ndarray, mode: str) -> float:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan
    return float(finite.min() if mode == "min" else finite.max())
