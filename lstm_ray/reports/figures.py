"""The figures of the sweep report, drawn with matplotlib (Agg) into PNG files; `page.py` puts them on the page."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.ticker import LogFormatter, MaxNLocator

from lstm_ray import outcomes
from lstm_ray.reports.record import SweepRecord, chance_importance, importance_hidden

CATEGORY_LIMIT = 6  # numeric axes with at most this many distinct values label each one
LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
PARETO = "Pareto front"  # the figure's title: only for a sweep with search.objectives
FRONT, DOMINATED = "tab:orange", "tab:gray"  # the front's trials, and the trials another beats on every objective
COLORS = {outcomes.COMPLETED: "tab:green", outcomes.STOPPED_EARLY: "tab:gray", outcomes.FAILED: "tab:red"}
# One (colour, dash) per baseline line, distinct from the outcome colours and from each other.
BASELINE_STYLES = [
    ("tab:blue", (0, (6, 3))),
    ("tab:orange", (0, (6, 2, 1, 2))),
    ("tab:purple", (0, (2, 2))),
    ("tab:brown", (0, (8, 2, 1, 2, 1, 2))),
    ("tab:olive", (0, (3, 1))),
]


def draw_all(record: SweepRecord, importance: dict[str, float], folder: Path) -> dict[str, Path]:
    """Title -> PNG file of every figure, in the report's order; the forecast figure only when the sweep logged
    test forecasts (`record.forecast` with rows)."""
    figures = {
        "Learning curves and ASHA rung cut-offs": (learning_curves, "learning_curves.png"),
        "Parallel coordinates": (parallel_coordinates, "parallel_coordinates.png"),
        "Hyperparameter importance": (lambda r: importance_bars(importance, r), "importance.png"),
        "Score by capacity: hidden units and layers": (capacity, "capacity.png"),
        "Model size against data size": (model_vs_data, "model_vs_data.png"),
    }
    if record.objectives:  # search.objectives
        figures = {PARETO: (pareto_front, "pareto_front.png")} | figures
    if record.forecast is not None and len(record.forecast):
        figures["Test forecasts against the actual values"] = (forecast_vs_actual, "forecast.png")
    out = {}
    for title, (draw, name) in figures.items():
        fig = draw(record)
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        out[title] = folder / name
    return out


def pareto_front(record: SweepRecord) -> plt.Figure:
    """Every trial scored on search.objectives at its best epoch of the metric, the first objective against each
    other one (one panel per pair): the Pareto front's trials in colour, labelled with their trial ids and joined
    by a step line in the first objective's order, the dominated ones grey. Trials that lack an objective's value
    (an older sweep logged latency_ms only for its front) are left out of that panel and counted in its title."""
    table = record.pareto()
    (first, first_mode), *others = record.objectives
    fig, axes = plt.subplots(1, len(others), figsize=(7.5 * len(others), 5), squeeze=False)
    for ax, (other, other_mode) in zip(axes[0], others, strict=True):
        finite = table[[first, other]].apply(pd.to_numeric, errors="coerce").map(np.isfinite).all(axis=1)
        shown, front = table[finite], table[finite & table["on_front"]].sort_values([first, other])
        dominated = shown[~shown["on_front"]]
        ax.scatter(
            dominated[first], dominated[other], color=DOMINATED, alpha=0.7, label=f"dominated ({len(dominated)})"
        )
        ax.step(front[first], front[other], where="post", color=FRONT, lw=1.2, alpha=0.8)
        ax.scatter(front[first], front[other], color=FRONT, zorder=3, label=f"Pareto front ({len(front)})")
        for trial_id, x, y in zip(front["trial_id"], front[first], front[other], strict=True):
            ax.annotate(str(trial_id), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, bbox=LABEL_BOX)
        for axis, name, mode in ((ax.xaxis, first, first_mode), (ax.yaxis, other, other_mode)):
            axis.set_label_text(f"{name} ({'lower' if mode == 'min' else 'higher'} is better)")
            values = shown[name].astype(float)
            if len(values) and values.min() > 0 and values.max() / values.min() > 20:  # sizes span decades
                (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
                plain_log_ticks(axis)
        left_out = len(table) - len(shown)
        ax.set_title(f"{first} against {other}" + (f" ({left_out} trials without both not shown)" * bool(left_out)))
        outside_legend(ax, fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(record: SweepRecord) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(9, 5))
    values = []
    for trial in record.trials:
        if record.metric in trial.history:
            curve = trial.history[["epoch", record.metric]].dropna()
            ax.plot(
                curve["epoch"], curve[record.metric], color=COLORS[trial.outcome], alpha=0.6, lw=1.2, marker="o", ms=3
            )
            values.extend(v for v in curve[record.metric] if np.isfinite(v))
    for rung, cutoff in record.cutoffs().items():
        ax.axvline(rung, color="black", ls=":", lw=0.8)
        ax.plot([rung - 0.3, rung + 0.3], [cutoff, cutoff], color="black", lw=2.5)
        ax.annotate(
            f"rung {rung}: cut-off {cutoff:.4g}",
            (rung, cutoff),
            textcoords="offset points",
            xytext=(6, 6),
            bbox=LABEL_BOX,
        )
    baseline_lines = _baseline_lines(ax, record)
    if values:  # a diverging trial would otherwise flatten every other curve; the baselines stay in view
        q1, q3 = np.percentile(values, [25, 75])
        levels = [line.get_ydata()[0] for line in baseline_lines]
        low, high = min(values + levels), max([min(max(values), float(q3 + 3 * (q3 - q1)))] + levels)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low) + 1e-12)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(record.metric)
    handles = [plt.Line2D([], [], color=c, label=k.replace("_", " ")) for k, c in COLORS.items()]
    handles.append(plt.Line2D([], [], color="black", lw=2.5, label="rung cut-off (all trials)"))
    outside_legend(ax, handles=handles + baseline_lines)
    return fig


def outside_legend(ax: plt.Axes, **kwargs: object) -> None:
    """The legend right of the axes, where it covers no curve and no label (the page has the width)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _baseline_lines(ax: plt.Axes, record: SweepRecord) -> list[plt.Line2D]:
    """A labelled dashed horizontal line at each baseline's validation value of the sweep's metric: a trial
    below (mode max: above) the best one learned something a naive forecast does not know."""
    scores = record.baseline_scores()
    lines = []
    for i, (name, value) in enumerate(zip(scores["baseline"], scores[record.metric], strict=True)):
        if np.isfinite(value):
            color, dash = BASELINE_STYLES[i % len(BASELINE_STYLES)]
            lines.append(ax.axhline(value, color=color, ls=dash, lw=1.6, label=f"baseline: {name}"))
    return lines


def forecast_vs_actual(record: SweepRecord) -> plt.Figure:
    """The first target's actual test values, the winner's forecasts and the best baseline's along the test
    windows: one panel for horizon step 1 and, when the horizon is longer, one for its last step.

    Raises ValueError when `record.forecast` is None or empty (`draw_all` then leaves the figure out).
    """
    frame = record.forecast
    if frame is None or frame.empty:
        raise ValueError("forecast_vs_actual needs record.forecast, the rows of the sweep's forecast_test.csv")
    target = frame["target"].iloc[0]
    rows = frame[frame["target"] == target]
    steps = sorted({1, int(rows["step"].max())})
    fig, axes = plt.subplots(len(steps), 1, figsize=(10, 3.5 * len(steps)), squeeze=False)
    baseline = f"baseline: {record.best_baseline or 'best'}"
    for ax, step in zip(axes[:, 0], steps, strict=True):
        at_step = rows[rows["step"] == step].sort_values("window")
        ax.plot(at_step["window"], at_step["actual"], color="black", lw=1.4, label="actual")
        ax.plot(at_step["window"], at_step["winner"], color="tab:green", lw=1.2, label="winner")
        ax.plot(at_step["window"], at_step["baseline"], color="tab:blue", lw=1.2, ls=(0, (6, 3)), label=baseline)
        ax.set_title(f"{target}, step {step} ahead: actual, winner and {baseline}")
        ax.set_xlabel("test window")
        ax.set_ylabel(str(target))
        outside_legend(ax)
    fig.tight_layout()
    return fig


def parallel_coordinates(record: SweepRecord) -> plt.Figure:
    board = record.leaderboard()
    score = f"best_{record.metric}"
    axes = record.searched + [score]
    fig, ax = plt.subplots(figsize=(max(6, 2 * len(axes)), 5))
    if board.empty:
        return fig
    columns, ticks = zip(*(_unit_scale(board[key], key != score) for key in axes), strict=True)
    scores = board[score].astype(float).to_numpy()
    finite = scores[np.isfinite(scores)]
    norm = plt.Normalize(finite.min(), finite.max()) if len(finite) else plt.Normalize(0, 1)
    cmap = plt.get_cmap("viridis_r" if record.mode == "min" else "viridis")
    for i in range(len(board)):
        ys = [col[i] for col in columns]
        color = cmap(norm(scores[i])) if np.isfinite(scores[i]) else "tab:red"
        ax.plot(range(len(axes)), ys, color=color, alpha=0.8)
    for x, axis_ticks in enumerate(ticks):
        ax.axvline(x, color="black", lw=0.8)
        for y, label in axis_ticks:  # the ends just outside the axis span, where no line runs
            offset = -12 if y == 0 else 4 if y == 1 else -4
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(3, offset), fontsize=8, bbox=LABEL_BOX)
    ax.set_xticks(range(len(axes)), axes, rotation=15)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=score)
    return fig


def importance_bars(importance: dict[str, float], record: SweepRecord) -> plt.Figure:
    """A bar per parameter in `importance` with a tick at its chance level, and a grey row per searched
    parameter `importance_hidden` leaves out, saying why (too few trials per setting)."""
    hidden = importance_hidden(record)
    rows = sorted(hidden, reverse=True) + sorted(importance, key=lambda k: importance[k])
    fig, ax = plt.subplots(figsize=(9, 0.5 * max(len(rows), 2) + 1.5))
    ax.barh(rows, [importance.get(k, 0.0) for k in rows], color="tab:blue")
    for y, key in enumerate(rows):
        if key in hidden:
            ax.annotate(f"hidden: {hidden[key]}", (0.01, y), va="center", fontsize=8, color="tab:gray")
        else:
            ax.plot([chance_importance(record, key)] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
    if importance:
        ax.plot([], [], color="black", lw=2, label="expected by chance: (settings − 1) / (trials − 1)")
        outside_legend(ax, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of best-{record.metric} variance explained alone (η²)")
    return fig


def capacity(record: SweepRecord) -> plt.Figure:
    board = record.leaderboard()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    score = f"best_{record.metric}"
    hidden = [record.setting(t, "model.hidden_size") for t in record.trials]
    layers = [record.setting(t, "model.num_layers") for t in record.trials]
    by_trial = board.set_index("trial_id")[score] if len(board) else pd.Series(dtype=float)
    for n_layers in sorted(set(layers)):
        points = [
            (h, by_trial.get(t.trial_id))
            for t, h, n in zip(record.trials, hidden, layers, strict=True)
            if n == n_layers
        ]
        left.scatter([p[0] for p in points], [p[1] for p in points], label=f"{n_layers} layer(s)", alpha=0.8)
    left.set_xscale("log", base=2)
    plain_log_ticks(left.xaxis, base=2)
    left.set_xlabel("hidden units per layer")
    left.set_ylabel(score)
    left.legend()
    groups: dict[tuple[int, int], list[pd.Series]] = {}
    for trial, h, n in zip(record.trials, hidden, layers, strict=True):
        if record.metric in trial.history and trial.outcome != outcomes.FAILED:
            groups.setdefault((h, n), []).append(trial.history.set_index("epoch")[record.metric])
    for (h, n), curves in sorted(groups.items()):
        median = best_so_far_median(curves, record.mode)
        label = f"{h} units x {n} layer(s) ({len(curves)})"
        right.plot(median.index, median.to_numpy(), marker="o", ms=3, label=label)
    right.set_xlabel("epoch")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel(f"median best-so-far {record.metric}")
    right.set_title("best score reached by each epoch, by capacity\n(a stopped trial keeps its best; failed left out)")
    outside_legend(right, fontsize=8)
    return fig


def best_so_far_median(curves: list[pd.Series], mode: str) -> pd.Series:
    """Epoch -> the median over `curves` (metric by epoch, one per trial) of each trial's best value so far.

    A trial ASHA stopped keeps its last best at later epochs, so the line moves only when some trial improves
    and never jumps because trials left; it falls (mode max: rises) monotonically.
    """
    frame = pd.concat(curves, axis=1).sort_index()
    best = frame.cummin() if mode == "min" else frame.cummax()
    return best.ffill().median(axis=1, skipna=True)


def model_vs_data(record: SweepRecord) -> plt.Figure:
    board = record.leaderboard()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    score = f"best_{record.metric}"
    if not board.empty:
        ratio = board["model_parameters"] / board["train_windows"].clip(lower=1)
        colors = [COLORS[o] for o in board["outcome"]]
        ax.scatter(ratio, board[score], c=colors, alpha=0.8)
        ax.axvline(1.0, color="black", ls=":", lw=0.8)
        ax.annotate(
            f"parameters = training {record.train_unit}",
            (1.0, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=8,
        )
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
    unit = record.train_unit.removesuffix("s")
    ax.set_xlabel(f"model parameters per training {unit}")
    ax.set_ylabel(score)
    rows = "sequences" if record.task == "classify" else "rows"  # a forecast's windows overlap its rows
    ax.set_title(f"{record.train_rows} training {rows}")
    return fig


def plain_log_ticks(axis: Axis, base: float = 10) -> None:
    """Label a log axis "16", "0.01", "1e+04" rather than in mathtext (2^4, 10^-2), whose parser took a third
    of a report's drawing time."""
    axis.set_major_formatter(LogFormatter(base))
    axis.set_minor_formatter(LogFormatter(base, labelOnlyBase=False))


def _unit_scale(values: pd.Series, choice: bool = True) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Values mapped to [0, 1] for one axis (log for wide positive ranges, order for categories), and its
    labels as (position, text): every category and, when `choice`, every setting of a number whose at most
    CATEGORY_LIMIT distinct values repeat (a choice such as hidden 16, 32, 64); else the two ends."""
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.notna().all():
        names = sorted(values.astype(str).unique())
        positions = np.arange(len(names)) / max(len(names) - 1, 1)
        index = values.astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(dtype=int)
        return positions[index], list(zip(positions.tolist(), names, strict=True))
    x = numeric.to_numpy(dtype=float)
    finite = x[np.isfinite(x)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    log = low > 0 and high / low > 20

    def scale(v: np.ndarray) -> np.ndarray:
        low_t, high_t = (math.log10(low), math.log10(high)) if log else (low, high)
        return np.clip(((np.log10(v) if log else v) - low_t) / (high_t - low_t or 1.0), 0, 1)

    distinct = np.unique(finite)
    repeated = choice and len(distinct) <= min(CATEGORY_LIMIT, len(finite) - 1)
    settings = distinct if repeated else np.array([low, high])
    return scale(x), [(float(y), f"{v:.3g}") for y, v in zip(scale(settings), settings, strict=True)]
