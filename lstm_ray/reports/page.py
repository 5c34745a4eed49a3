"""The sweep report: what the trials learned, where ASHA cut them, and which settings mattered.

    lstm-ray report quickstart                      # the latest sweep of experiment `quickstart`, from MLflow
    write_report(SweepRecord.from_mlflow(client, parent_run_id), "report/")

One self-contained `report.html` (PNGs embedded, no scripts, readable offline) with the PNGs beside it:
learning curves with ASHA's rung cut-offs and the naive baselines, parallel coordinates, hyperparameter
importance, score against hidden units and layers, model size against data size, the winner's and the best
baseline's test forecasts against the actual values, the top trials and the baselines' scores (`figures.py`
draws the figures).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from lstm_ray import outcomes
from lstm_ray.config import StorageConfig, TrackingConfig, load_config
from lstm_ray.config.rules import check_storage_path
from lstm_ray.errors import ConfigError
from lstm_ray.redaction import redact
from lstm_ray.reports.record import MIN_GROUPS, MIN_TRIALS_PER_GROUP, SweepRecord, importance, importance_hidden
from lstm_ray.storage import as_uri
from lstm_ray.tracking.outbox import replay_spilled
from lstm_ray.tracking.runs import ROLE_SWEEP, TAG_ROLE, connect

TOP_TRIALS = 10
IMPORTANCE = "Hyperparameter importance"  # the figure `_importance_note` explains
PARETO = "Pareto front"  # figures.PARETO, which `_pareto_note` explains (figures.py imports matplotlib)
OUTCOMES = (outcomes.COMPLETED, outcomes.STOPPED_EARLY, outcomes.FAILED)  # in the summary's order


def write_report(record: SweepRecord, folder: str | Path) -> Path:
    """Draw every figure into `folder` and write `report.html` there; returns the HTML file's path."""
    import matplotlib

    matplotlib.use("Agg")
    from lstm_ray.reports import figures as report_figures  # matplotlib's pyplot: only when a report is drawn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = report_figures.draw_all(record, importance(record), folder)
    board = record.leaderboard()
    page = folder / "report.html"
    page.write_text(_html(record, figures, board))
    return page


def _html(record: SweepRecord, figures: dict[str, Path], board: pd.DataFrame) -> str:
    counts = pd.Series([t.outcome for t in record.trials]).value_counts().to_dict()
    summary = ", ".join(f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in OUTCOMES)
    sections = []
    for title, path in figures.items():
        encoded = base64.b64encode(path.read_bytes()).decode()
        note = {IMPORTANCE: _importance_note, PARETO: _pareto_note}.get(title, lambda r: "")(record)
        sections.append(
            f"<h2>{html.escape(title)}</h2>\n{note}"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        )
    top = board.head(TOP_TRIALS).drop(columns=["run_id"], errors="ignore")
    table = _scrolling(top.to_html(index=False, float_format=lambda v: f"{v:.5g}", border=0, classes="top"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep report: {html.escape(record.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} img{{max-width:100%}}
div.scroll{{overflow-x:auto;max-width:100%}} table.top{{border-collapse:collapse}}
table.top td,table.top th{{padding:2px 6px;border-bottom:1px solid #ddd}} table.top th{{vertical-align:bottom}}</style>
</head><body>
<h1>Sweep report: {html.escape(record.name)}</h1>
<p>{len(record.trials)} trials ({summary}); metric {html.escape(record.metric)} ({record.mode}),
scheduler {record.scheduler}, up to {record.max_epochs} epochs.</p>
<h2>Top trials</h2>
{table}
{_baselines_table(record)}
{chr(10).join(sections)}
</body></html>
"""


def _scrolling(table: str) -> str:
    """`table` in a box that scrolls sideways instead of widening the page (16 trials of six searched keys
    are wider than a laptop screen), its headers allowed to wrap after each '.' and '_'."""
    head, rest = table.split("</thead>", 1)
    head = re.sub(r"(?<=[._])(?=[^<>]*</th>)", "<wbr>", head)
    return f"<div class='scroll'>\n{head}</thead>{rest}\n</div>"


def _importance_note(record: SweepRecord) -> str:
    """Why some parameters (or all) have no importance bar: η² of one trial per setting is 1.0 by itself."""
    rule = (
        f"Each parameter's η² is the share of the variance of the trials' best scores that its settings explain "
        f"alone. It is shown only for parameters with at least {MIN_TRIALS_PER_GROUP} scored trials in each of "
        f"at least {MIN_GROUPS} settings (continuous values binned in quantiles): with one trial per setting "
        f"η² is 1.0 whatever the data. The black tick is the η² a parameter with no effect reaches by chance."
    )
    hidden = importance_hidden(record)
    if not hidden:
        return f"<p>{html.escape(rule)}</p>\n"
    items = "".join(f"<li>{html.escape(key)}: {html.escape(why)}</li>" for key, why in sorted(hidden.items()))
    which = "every searched parameter" if len(hidden) == len(record.searched) else "these parameters"
    return f"<p>{html.escape(rule)} Hidden for {which}:</p>\n<ul class='hidden'>{items}</ul>\n"


def _pareto_note(record: SweepRecord) -> str:
    """What the Pareto figure shows, and the front's trials."""
    table = record.pareto()
    front = ", ".join(table.loc[table["on_front"], "trial_id"].astype(str)) if len(table) else ""
    objectives = ", ".join(f"{metric} ({mode})" for metric, mode in record.objectives)
    return (
        f"<p>Each trial at its best epoch of {html.escape(record.metric)} (the checkpoint the sweep keeps), on "
        f"{html.escape(objectives)}. In colour the Pareto front: no other trial is at least as good on every "
        f"objective and better on one; grey: dominated trials. Front: {html.escape(front or 'none')}.</p>\n"
    )


def _baselines_table(record: SweepRecord) -> str:
    """The naive baselines' validation and test values of the sweep's metric, best first; "" when none."""
    scores = record.baseline_scores()
    if scores.empty:
        return ""
    table = scores.to_html(index=False, float_format=lambda v: f"{v:.5g}", border=0, classes="top baselines")
    best = f" Best: {html.escape(record.best_baseline)}." if record.best_baseline else ""
    return f"""<h2>Naive baselines</h2>
<p>Scored on the same validation and test windows as the trials.{best}</p>
{table}"""


def report_sweep(
    name: str,
    *,
    tracking_uri: str | None = None,
    storage: str | None = None,
    run_id: str | None = None,
    out: str | Path | None = None,
) -> Path:
    """`lstm-ray report`: send spilled writes, then write the report of one sweep from MLflow; its HTML path.

    `name` is an experiment name or an experiment YAML file (which then supplies tracking.uri, storage.path
    and the experiment). Without `run_id`, the experiment's latest sweep. Raises ConfigError when the
    experiment or run does not exist.
    """
    if storage is not None:
        check_storage_path("--storage", storage)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError("--out", f"{out} is a file, not a folder; name the folder the report goes into")
    experiment_name, tracking, storage_cfg = name, TrackingConfig(), StorageConfig()
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        cfg = load_config(name)
        experiment_name, tracking, storage_cfg = cfg.experiment_name, cfg.tracking, cfg.storage
    uri = tracking_uri or tracking.uri
    client = connect(uri)
    replay_spilled(as_uri(storage or storage_cfg.path), timeout=tracking.flush_timeout_s)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        known = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(
            "NAME", f"no MLflow experiment {experiment_name!r} at {redact(uri)}; experiments there: {known}"
        )
    if run_id is None:
        sweeps = client.search_runs(
            [experiment.experiment_id],
            f"tags.`{TAG_ROLE}` = '{ROLE_SWEEP}'",
            order_by=["start_time DESC"],
            max_results=1,
        )
        if not sweeps:
            raise ConfigError("NAME", f"experiment {experiment_name!r} holds no sweep yet; run `lstm-ray tune` first")
        run_id = sweeps[0].info.run_id
    else:
        _check_run(client, run_id, uri)
    folder = Path(out) if out else Path("lstm-ray-reports") / _folder_part(experiment_name) / _folder_part(run_id[:8])
    return write_report(SweepRecord.from_mlflow(client, run_id), folder)


def _check_run(client: Any, run_id: str, uri: str) -> None:
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError("--run", f"no run {run_id!r} at {redact(uri)}; pass a sweep's parent run id") from None


def _folder_part(name: str) -> str:
    """`name` as one safe folder name: experiment names may hold '/' or '..', which must not leave the folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "sweep"
