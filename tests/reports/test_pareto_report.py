"""The Pareto front in the sweep report: the figure's points read back from matplotlib (front in colour, labelled
and joined by a step line; dominated grey), one panel per pair with the first objective, no figure without
objectives, and the front read back from what MLflow holds (pareto.json, or the lstm_ray.pareto tags)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from mlflow.tracking import MlflowClient

from lstm_ray.reports import SweepRecord, TrialRecord, write_report
from lstm_ray.reports import figures as report_figures

SETTINGS = {"name": "front", "metric": "val_rmse", "mode": "min", "scheduler": "fifo", "grace_period": 1,
            "reduction_factor": 2, "max_epochs": 3}  # fmt: skip
OBJECTIVES = [("val_rmse", "min"), ("latency_ms", "min")]
# trial id -> (best val_rmse, latency_ms, model_parameters); the front by the first two is a, b, c.
TRIALS = {
    "a": (0.10, 9.0, 9000.0),
    "b": (0.20, 4.0, 3000.0),
    "c": (0.40, 1.0, 500.0),
    "d": (0.30, 6.0, 3500.0),  # b beats it on every objective
    "e": (0.50, 2.0, 100.0),  # c beats it on both (but it is the smallest)
}
FRONT = {"a", "b", "c"}


def _history(best: float, latency: float) -> pd.DataFrame:
    """Three epochs whose best val_rmse is `best` at epoch 2; later epochs are worse (the checkpoint is epoch 2)."""
    return pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "val_rmse": [best * 2, best, best * 1.5],
            "latency_ms": [latency] * 3,
            "train_loss": [1.0, 0.5, 0.4],
        }  # fmt: skip
    )


def _record(objectives=OBJECTIVES) -> SweepRecord:
    trials = []
    for trial_id, (rmse, latency, size) in TRIALS.items():
        trial = TrialRecord(trial_id, {"model.hidden_size": 4}, _history(rmse, latency), "completed", "", size, 50.0)
        trial.objectives = {"val_rmse": rmse, "latency_ms": latency, "model_parameters": size}
        trials.append(trial)
    return SweepRecord(**SETTINGS, base={}, trials=trials, objectives=list(objectives))


def _points(ax: plt.Axes) -> dict[str, set[tuple[float, float]]]:
    """The axes' scatter points by colour name: 'grey' or 'front'."""
    found: dict[str, set[tuple[float, float]]] = {"grey": set(), "front": set()}
    for collection in ax.collections:
        assert isinstance(collection, PathCollection)
        colour = tuple(collection.get_facecolor()[0][:3])
        kind = "grey" if colour == to_rgba(report_figures.DOMINATED)[:3] else "front"
        assert kind == "grey" or colour == to_rgba(report_figures.FRONT)[:3]
        found[kind] |= {(round(x, 6), round(y, 6)) for x, y in collection.get_offsets()}
    return found


def test_the_front_is_coloured_labelled_and_stepped_and_the_dominated_trials_are_grey():
    fig = report_figures.pareto_front(_record())
    (ax,) = fig.axes
    points = _points(ax)
    assert points["front"] == {(TRIALS[t][0], TRIALS[t][1]) for t in FRONT}
    assert points["grey"] == {(TRIALS[t][0], TRIALS[t][1]) for t in set(TRIALS) - FRONT}
    assert {text.get_text() for text in ax.texts} == FRONT  # labels: the front's trial ids only
    (step,) = ax.get_lines()
    assert list(step.get_xdata()) == [0.10, 0.20, 0.40]  # in the first objective's order
    assert step.get_drawstyle() == "steps-post"
    assert ax.get_xlabel().startswith("val_rmse") and ax.get_ylabel().startswith("latency_ms")
    plt.close(fig)


def test_three_objectives_draw_one_panel_per_pair_with_the_first():
    record = _record(OBJECTIVES + [("model_parameters", "min")])
    fig = report_figures.pareto_front(record)
    assert [(ax.get_xlabel().split()[0], ax.get_ylabel().split()[0]) for ax in fig.axes] == [
        ("val_rmse", "latency_ms"),
        ("val_rmse", "model_parameters"),
    ]
    # On three objectives e (the smallest) is on the front too: coloured in both panels.
    right = _points(fig.axes[1])
    assert right["front"] == {(TRIALS[t][0], TRIALS[t][2]) for t in FRONT | {"e"}}
    assert right["grey"] == {(TRIALS["d"][0], TRIALS["d"][2])}
    assert fig.axes[1].get_yscale() == "log"  # 100 to 9000 parameters
    plt.close(fig)


def test_the_report_has_a_pareto_figure_only_with_objectives(tmp_path):
    html = write_report(_record(), tmp_path / "mo").read_text()
    assert "<h2>Pareto front</h2>" in html and "Front: a, b, c." in html
    assert (tmp_path / "mo" / "pareto_front.png").stat().st_size > 10_000
    single = write_report(_record(objectives=[]), tmp_path / "single").read_text()
    assert "Pareto front" not in single and not (tmp_path / "single" / "pareto_front.png").exists()


def test_a_trial_missing_an_objective_is_left_out_and_counted():
    record = _record()
    record.trials[3].objectives.pop("latency_ms")  # d: an older sweep logged latency_ms only on the front
    fig = report_figures.pareto_front(record)
    (ax,) = fig.axes
    assert len(_points(ax)["grey"]) == 1 and "(1 trials without both not shown)" in ax.get_title()
    plt.close(fig)


def _log_sweep(client: MlflowClient, pareto: str) -> str:
    """A multi-objective sweep as lstm-ray logs it: parent params, a child run per trial with its per-epoch
    val_rmse and its size; `pareto` "json": pareto.json on the parent (no latency_ms on the trial runs, as before
    latency_ms was logged per epoch), "tags": latency_ms per epoch and lstm_ray.pareto tags, no pareto.json."""
    experiment = client.create_experiment(f"front-{pareto}")
    parent = client.create_run(experiment, tags={"lstm_ray.role": "sweep"}).info.run_id
    params = {"name": "front", "search.metric": "val_rmse", "search.mode": "min", "search.scheduler": "fifo",
              "search.grace_period": 1, "search.reduction_factor": 2, "train.max_epochs": 3,
              "search.objectives": str([{"metric": m, "mode": d} for m, d in OBJECTIVES])}  # fmt: skip
    for key, value in params.items():
        client.log_param(parent, key, value)
    rows = []
    for trial_id, (rmse, latency, size) in TRIALS.items():
        tags = {"mlflow.parentRunId": parent, "lstm_ray.trial_id": trial_id, "lstm_ray.outcome": "completed"}
        tags |= {"lstm_ray.pareto": "true"} if pareto == "tags" and trial_id in FRONT else {}
        run = client.create_run(experiment, tags=tags).info.run_id
        client.log_param(run, "model.hidden_size", 4)
        for _, row in _history(rmse, latency).iterrows():
            step = int(row["epoch"])
            client.log_metric(run, "val_rmse", row["val_rmse"], step=step)
            if pareto == "tags":
                client.log_metric(run, "latency_ms", row["latency_ms"], step=step)
        client.log_metric(run, "model_parameters", size, step=0)
        if trial_id in FRONT:
            rows.append({"trial_id": trial_id, "epoch": 2, "val_rmse": rmse, "latency_ms": latency, "params": {}})
    if pareto == "json":
        front = {"objectives": [{"metric": m, "mode": d} for m, d in OBJECTIVES], "front": rows}
        client.log_text(parent, json.dumps(front), "pareto.json")
    return parent


@pytest.mark.parametrize("pareto", ["json", "tags"])
def test_the_front_is_read_back_from_mlflow(tmp_path, pareto):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    record = SweepRecord.from_mlflow(client, _log_sweep(client, pareto))
    assert record.objectives == OBJECTIVES
    table = record.pareto().set_index("trial_id")
    assert set(table.index[table["on_front"]]) == FRONT
    for trial_id in FRONT:  # each front trial at its best epoch (epoch 2), its latency from the run or pareto.json
        assert table.loc[trial_id, "val_rmse"] == pytest.approx(TRIALS[trial_id][0])
        assert table.loc[trial_id, "latency_ms"] == pytest.approx(TRIALS[trial_id][1])
    dominated = table.loc[["d", "e"], "latency_ms"].to_numpy()
    assert np.isnan(dominated).all() if pareto == "json" else list(dominated) == [6.0, 2.0]
    fig = report_figures.pareto_front(record)
    assert {text.get_text() for text in fig.axes[0].texts} == FRONT
    plt.close(fig)
