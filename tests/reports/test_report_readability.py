"""The report as a reader meets it: importance only where trials support it (and why not), the words of a
classify sweep, every category labelled, a top-trials table that does not widen the page, a legend that
covers no rung label, a capacity curve that does not jump when ASHA stops trials."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lstm_ray.reports import SweepRecord, TrialRecord, figures, importance, write_report  # noqa: E402
from lstm_ray.reports.record import importance_hidden  # noqa: E402

SETTINGS = {"name": "readable", "metric": "val_rmse", "mode": "min", "scheduler": "asha", "grace_period": 1,
            "reduction_factor": 2, "max_epochs": 4}  # fmt: skip


def record_of(params: list[dict], scores: list[float], task: str = "forecast", epochs: int = 4) -> SweepRecord:
    """A sweep whose trial i searched params[i] and whose curve falls to scores[i] over `epochs` epochs."""
    trials = []
    for i, (setting, score) in enumerate(zip(params, scores, strict=True)):
        steps = np.arange(1, epochs + 1)
        history = pd.DataFrame({"epoch": steps, "val_rmse": score * (1 + 1.0 / steps)})
        trials.append(TrialRecord(f"t{i:02d}", setting, history, "completed", f"run{i}", 1000.0, 200.0))
    base = {"data.task": task, "model.hidden_size": 16, "model.num_layers": 1}
    return SweepRecord(**SETTINGS, base=base, train_rows=234, trials=trials)


def test_importance_of_one_trial_per_setting_is_hidden_not_one():
    rng = np.random.default_rng(1)
    lrs = [0.001, 0.002, 0.004, 0.008, 0.016]
    record = record_of([{"train.lr": lr} for lr in lrs], list(rng.uniform(1, 2, 5)))
    assert importance(record) == {}
    assert "3+ scored trials in each of 2+ settings" in importance_hidden(record)["train.lr"]


def test_importance_of_six_trials_bins_a_continuous_parameter_in_halves():
    lrs = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]
    scores = [1.0, 3.0, 2.0, 1.5, 2.5, 1.2]  # unrelated to lr: one group per trial would say 1.0
    record = record_of([{"train.lr": lr} for lr in lrs], scores)
    low, high = np.array(scores[:3]), np.array(scores[3:])
    y = np.array(scores)
    expected = 3 * ((low.mean() - y.mean()) ** 2 + (high.mean() - y.mean()) ** 2) / ((y - y.mean()) ** 2).sum()
    assert importance(record) == {"train.lr": pytest.approx(expected)} and expected < 0.2
    assert importance_hidden(record) == {}


def test_importance_leaves_a_setting_of_too_few_trials_out():
    hidden = [8, 8, 8, 16, 16, 16, 32]
    scores = [1.0, 1.1, 0.9, 2.0, 2.1, 1.9, 50.0]  # the lone 32 would dominate the variance
    shares = importance(record_of([{"model.hidden_size": h} for h in hidden], scores))
    assert shares["model.hidden_size"] == pytest.approx(1.5 / 1.54)  # between-group 6 x 0.5², total 1.54


def test_page_says_why_importance_is_hidden(tmp_path):
    lrs, cells = [0.1, 0.01, 0.001, 0.03], ["a", "b", "a", "b"]
    params = [{"train.lr": lr, "model.cell": cell} for lr, cell in zip(lrs, cells, strict=True)]
    text = write_report(record_of(params, [1.0, 2.0, 3.0, 4.0]), tmp_path / "report").read_text()
    note = text[text.index("<h2>Hyperparameter importance</h2>") :]
    note = note[: note.index("<img")]
    assert "Hidden for every searched parameter" in note and "with one trial per setting" in note
    assert "<li>train.lr: needs 3+ scored trials" in note and "<li>model.cell: needs 3+" in note


@pytest.mark.parametrize(
    ("task", "rows", "unit"), [("classify", "sequences", "sequence"), ("forecast", "rows", "window")]
)
def test_model_size_figure_names_what_a_training_example_is(task, rows, unit):
    fig = figures.model_vs_data(record_of([{"train.lr": 0.01}] * 3, [1.0, 2.0, 3.0], task=task))
    ax = fig.axes[0]
    assert ax.get_title() == f"234 training {rows}" and ax.get_xlabel() == f"model parameters per training {unit}"
    plt.close(fig)


def test_parallel_coordinates_label_every_category_and_choice_and_the_ends_of_the_rest():
    cells, hidden = ["gru", "lstm", "rnn", "lstm"], [16, 32, 64, 32]
    lrs = [0.001, 0.003, 0.01, 0.02]
    keys = ("model.cell", "model.hidden_size", "train.lr")
    params = [dict(zip(keys, values, strict=True)) for values in zip(cells, hidden, lrs, strict=True)]
    record = record_of(params, [1.0, 2.0, 3.0, 4.0])
    fig = figures.parallel_coordinates(record)
    labels = {text.get_text() for text in fig.axes[0].texts}
    assert {"gru", "lstm", "rnn", "16", "32", "64", "0.001", "0.02", "1.25", "5"} <= labels
    assert not {"0.003", "0.01", "2.5", "3.75"} & labels  # a continuous value, or the score: its ends only
    plt.close(fig)


def wide_record(trials: int = 16) -> SweepRecord:
    """Sixteen trials of six searched keys, as configs/quickstart.yaml searches them."""
    rng = np.random.default_rng(0)
    params = [
        {
            "model.cell": rng.choice(["lstm", "gru"]),
            "model.hidden_size": int(rng.choice([16, 32, 64])),
            "model.num_layers": int(rng.choice([1, 2])),
            "model.dropout": float(rng.uniform(0, 0.3)),
            "train.lr": float(rng.uniform(1e-3, 3e-2)),
            "train.batch_size": int(rng.choice([32, 64, 128])),
        }
        for _ in range(trials)
    ]
    return record_of(params, list(rng.uniform(0.5, 3.0, trials)))


def test_top_trials_table_scrolls_in_its_box_and_its_headers_wrap(tmp_path):
    text = write_report(wide_record(), tmp_path / "report").read_text()
    assert re.search(r"div\.scroll\{[^}]*overflow-x:auto", text)
    box = text[text.index("<div class='scroll'>") :]
    assert box.index("<table") < box.index("</table>") < box.index("</div>")
    assert "<th>model.<wbr>hidden_<wbr>size</th>" in box and "best_<wbr>val_<wbr>rmse" in box


def test_learning_curve_legend_covers_no_rung_label():
    record = record_of([{"train.lr": 10.0**-i} for i in range(6)], [1.0, 1.2, 1.4, 1.6, 1.8, 2.0])
    fig = figures.learning_curves(record)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    rung_labels = [t for t in ax.texts if t.get_text().startswith("rung ")]
    assert len(rung_labels) == 2  # rungs 1 and 2 of max_epochs 4
    assert not any(legend.overlaps(t.get_window_extent(renderer)) for t in rung_labels)
    assert not legend.overlaps(ax.get_window_extent(renderer))
    plt.close(fig)


def test_capacity_curve_keeps_a_stopped_trials_best_instead_of_jumping():
    epochs = pd.Index([1, 2, 3, 4], name="epoch")
    kept = pd.Series([3.0, 2.0, 2.5, 1.0], index=epochs)
    stopped = [pd.Series([1.5, 1.2], index=epochs[:2]), pd.Series([1.4, 1.3], index=epochs[:2])]
    median = figures.best_so_far_median([kept, *stopped], "min")
    assert list(median) == [1.5, 1.3, 1.3, 1.2]  # a plain mean would jump from 1.5 to 2.5 at epoch 3
    assert all(np.diff(median) <= 0)
    assert list(figures.best_so_far_median([kept], "max")) == [3.0, 3.0, 3.0, 3.0]


@pytest.mark.browser
def test_report_page_is_no_wider_than_a_1400_px_window(tmp_path):
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    page_file = write_report(wide_record(), tmp_path / "report")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_file.as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 1400
            box = page.evaluate("(() => { const b = document.querySelector('div.scroll'); "
                                "return [b.clientWidth, b.scrollWidth]; })()")  # fmt: skip
            assert box[0] <= 1400 and page.locator("table.top").first.is_visible()
        finally:
            browser.close()
