"""The report beside the naive baselines: their lines on the learning curves, the test forecasts against the
actual values, the baselines table, and the same record read back from a real MLflow store."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from lstm_ray.reports import SweepRecord, TrialRecord, figures, write_report  # noqa: E402
from lstm_ray.tracking.runs import BASELINE_PREFIX, FORECAST_ARTIFACT, TAG_BEST_BASELINE  # noqa: E402

SETTINGS = {"name": "baselined", "metric": "val_rmse", "mode": "min", "scheduler": "asha", "grace_period": 1,
            "reduction_factor": 2, "max_epochs": 4}  # fmt: skip
BASELINES = {
    "last_value.val_rmse": 1.6,
    "last_value.test_rmse": 1.7,
    "seasonal.val_rmse": 1.3,
    "seasonal.test_rmse": 1.35,
    "drift.val_rmse": 2.1,
    "drift.test_rmse": 2.2,
    "drift.val_mae": 1.9,  # another metric: no line, no row
}


def forecast_frame(horizon: int, windows: int = 20) -> pd.DataFrame:
    """forecast_test.csv's rows for targets "co2" then "temp": actual a sine, winner near it, baseline lagging."""
    rows = []
    for window in range(windows):
        for step in range(1, horizon + 1):
            for target, scale in (("co2", 1.0), ("temp", 100.0)):
                actual = scale * np.sin((window + step) / 3.0)
                lagged = scale * np.sin(window / 3.0)
                rows.append((window, step, target, actual, actual + 0.05 * scale, lagged))
    return pd.DataFrame(rows, columns=["window", "step", "target", "actual", "winner", "baseline"])


def baselined_record(horizon: int = 3) -> SweepRecord:
    """Three trials whose val_rmse falls to 1.0, 1.5 and 2.0, with baselines and test forecasts."""
    trials = []
    for i, score in enumerate([1.0, 1.5, 2.0]):
        epochs = np.arange(1, 5)
        history = pd.DataFrame({"epoch": epochs, "val_rmse": score * (1 + 1.0 / epochs)})
        trials.append(TrialRecord(f"t{i:02d}", {"train.lr": 10.0**-i}, history, "completed", f"run{i}", 800.0, 500.0))
    return SweepRecord(
        **SETTINGS,
        base={"model.hidden_size": 8, "model.num_layers": 1},
        train_rows=600,
        trials=trials,
        baselines=dict(BASELINES),
        forecast=forecast_frame(horizon),
        best_baseline="seasonal",
    )


def lines_by_label(ax: plt.Axes) -> dict[str, plt.Line2D]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_learning_curves_draw_each_baseline_as_a_labelled_dashed_line():
    fig = figures.learning_curves(baselined_record())
    ax = fig.axes[0]
    lines = lines_by_label(ax)
    for name, value in (("last_value", 1.6), ("seasonal", 1.3), ("drift", 2.1)):
        line = lines[f"baseline: {name}"]
        assert list(line.get_ydata()) == [value, value] and line.is_dashed()
    baseline_lines = [line for label, line in lines.items() if label.startswith("baseline: ")]
    assert len({line.get_color() for line in baseline_lines}) == 3  # told apart by colour and by dash
    legend = {text.get_text() for text in ax.get_legend().get_texts()}
    assert {"baseline: last_value", "baseline: seasonal", "baseline: drift"} <= legend
    low, high = ax.get_ylim()
    assert low < 1.3 and high > 2.1  # every baseline in view
    plt.close(fig)


def test_learning_curves_without_baselines_have_no_baseline_line():
    record = baselined_record()
    record.baselines = {}
    fig = figures.learning_curves(record)
    assert not [label for label in lines_by_label(fig.axes[0]) if label.startswith("baseline")]
    plt.close(fig)


def test_forecast_figure_shows_actual_winner_and_best_baseline_at_the_first_and_last_step():
    record = baselined_record(horizon=3)
    fig = figures.forecast_vs_actual(record)
    assert len(fig.axes) == 2
    expected = record.forecast[record.forecast["target"] == "co2"]
    for ax, step in zip(fig.axes, (1, 3), strict=True):
        lines = lines_by_label(ax)
        assert set(lines) == {"actual", "winner", "baseline: seasonal"}
        rows = expected[expected["step"] == step].sort_values("window")
        for label, column in (("actual", "actual"), ("winner", "winner"), ("baseline: seasonal", "baseline")):
            np.testing.assert_allclose(lines[label].get_ydata(), rows[column])
            np.testing.assert_array_equal(lines[label].get_xdata(), rows["window"])
        assert "co2" in ax.get_title() and f"step {step}" in ax.get_title() and "seasonal" in ax.get_title()
    plt.close(fig)


def test_forecast_figure_of_a_one_step_horizon_has_one_panel():
    fig = figures.forecast_vs_actual(baselined_record(horizon=1))
    assert len(fig.axes) == 1 and set(lines_by_label(fig.axes[0])) == {"actual", "winner", "baseline: seasonal"}
    plt.close(fig)


def test_report_page_shows_the_forecast_figure_and_the_baselines_table(tmp_path):
    page = write_report(baselined_record(), tmp_path / "report")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 6
    assert (tmp_path / "report" / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = text[text.index("<h2>Naive baselines</h2>") :]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<t[hd]>([^<]*)</t[hd]>", table)
    assert cells == ["baseline", "val_rmse", "test_rmse", "seasonal", "1.3", "1.35", "last_value", "1.6", "1.7",
                     "drift", "2.1", "2.2"]  # fmt: skip
    assert "Best: seasonal." in text


def test_report_page_without_baselines_or_forecast_has_neither(tmp_path):
    record = baselined_record()
    record.baselines, record.forecast, record.best_baseline = {}, None, ""
    text = write_report(record, tmp_path / "report").read_text()
    assert "Naive baselines" not in text and text.count("data:image/png;base64,") == 5
    assert not (tmp_path / "report" / "forecast.png").exists()


def test_from_results_takes_baselines_with_or_without_the_mlflow_prefix(tiny_config):
    from lstm_ray.data.dataset import prepare_dataset, window_settings

    data = prepare_dataset(tiny_config.data, settings=window_settings(tiny_config))
    frame = forecast_frame(horizon=2)
    baselines = {"baseline.last_value.val_rmse": 0.9, "seasonal.val_rmse": 0.8}
    record = SweepRecord.from_results(tiny_config, [], data, baselines=baselines, forecast=frame, best_baseline="x")
    assert record.baselines == {"last_value.val_rmse": 0.9, "seasonal.val_rmse": 0.8}
    assert record.forecast is frame and record.best_baseline == "x" and record.trials == []


def parent_run(tmp_path) -> tuple[MlflowClient, str]:
    """A real SQLite MLflow store holding one sweep parent run with the settings a SweepRecord reads."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("baselined", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    params = {"name": "baselined", "search.metric": "val_rmse", "search.mode": "min", "search.scheduler": "asha",
              "search.grace_period": "1", "search.reduction_factor": "2", "train.max_epochs": "4"}  # fmt: skip
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    return client, run_id


def test_from_mlflow_reads_back_the_baselines_tag_and_forecast(tmp_path):
    client, run_id = parent_run(tmp_path)
    metrics = [Metric(BASELINE_PREFIX + key, value, 0, 0) for key, value in BASELINES.items()]
    client.log_batch(run_id, metrics=metrics + [Metric("best_val_rmse", 1.25, 0, 0)])
    client.set_tag(run_id, TAG_BEST_BASELINE, "seasonal")
    frame = forecast_frame(horizon=3)
    csv = tmp_path / FORECAST_ARTIFACT
    frame.to_csv(csv, index=False)
    client.log_artifact(run_id, str(csv))
    client.set_terminated(run_id)

    record = SweepRecord.from_mlflow(client, run_id)
    assert record.baselines == pytest.approx(BASELINES) and set(record.baselines) == set(BASELINES)
    assert record.best_baseline == "seasonal"
    pd.testing.assert_frame_equal(record.forecast, frame)


def test_from_mlflow_without_baselines_or_forecast_reads_empty(tmp_path):
    client, run_id = parent_run(tmp_path)
    record = SweepRecord.from_mlflow(client, run_id)
    assert record.baselines == {} and record.forecast is None and record.best_baseline == ""
