"""The MLflow UI, checked in a real headless Chromium (Debian's, driven by Playwright) against a real server.

Screenshots land in test-artifacts/mlflow-ui/ (git-ignored). MLflow 3.17 opens experiments on its GenAI
view, so the runs table is opened with `workflowType=machine_learning`; nested runs stay collapsed until the
expander in the parent's row is clicked; a run's charts are on its `model-metrics` tab.
"""

from __future__ import annotations

import shutil

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server_process import REPO, ServerProcess

from lstm_ray.config import parse_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = REPO / "test-artifacts" / "mlflow-ui"
PAGE_LIMIT_MS = 60_000  # a guard against a page that never renders, not a timing assertion


@pytest.fixture(scope="module")
def logged_sweep(tmp_path_factory, local_ray):
    """A small sweep logged through a real server; yields (url, experiment id, parent run, child runs)."""
    from conftest import TINY

    from lstm_ray.sweep.tuning import run_sweep

    folder = tmp_path_factory.mktemp("ui")
    server = ServerProcess(folder / "server")
    server.start()
    try:
        raw = {**TINY, "train": TINY["train"] | {"max_epochs": 3}}
        raw["search"] = {
            "num_samples": 4,
            "grace_period": 1,
            "n_initial_points": 2,
            "space": {"model.hidden_size": {"choice": [4, 8]}, "train.lr": {"choice": [0.003, 0.03]}},
        }
        raw["tracking"] = {"uri": server.url, "experiment": "ui-check", "checkpoints": "none"}  # fmt: skip
        raw["storage"] = {"path": str(folder / "results")}
        summary = run_sweep(parse_config(raw), config_text="name: tiny\n")
        client = MlflowClient(server.url)
        parent = client.get_run(summary.parent_run_id)
        children = client.search_runs(
            [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        yield server.url, parent.info.experiment_id, parent, children
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make install-browser` (Debian package chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(PAGE_LIMIT_MS)
    yield page
    page.close()


def test_experiment_page_lists_the_parent_with_its_children_nested(logged_sweep, page):
    url, experiment_id, parent, children = logged_sweep
    page.goto(f"{url}/#/experiments/{experiment_id}?workflowType=machine_learning")
    parent_link = page.get_by_role("link", name=parent.info.run_name, exact=True)
    parent_link.wait_for()
    assert page.get_by_role("link", name=children[0].info.run_name, exact=True).count() == 0  # collapsed
    row = page.locator("div[role='row']", has=parent_link)
    row.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    for child in children:
        page.get_by_role("link", name=child.info.run_name, exact=True).wait_for()
    page.screenshot(path=str(SHOTS / "experiment-nested-runs.png"))
    assert len(children) == 4


def test_a_childs_chart_shows_its_per_epoch_values(logged_sweep, page):
    url, experiment_id, _, children = logged_sweep
    child = max(children, key=lambda run: int(run.data.tags["lstm_ray.epochs"]))
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{child.info.run_id}/model-metrics")
    page.get_by_placeholder("Search metric charts").fill("val_rmse")  # leaves the one chart
    page.get_by_text("val_rmse", exact=True).first.wait_for()
    points = page.locator("svg.main-svg path.point")
    points.first.wait_for()
    page.screenshot(path=str(SHOTS / "child-metric-charts.png"))
    assert points.count() == int(child.data.tags["lstm_ray.epochs"]) == 3


def test_the_report_artifact_renders_with_its_figures(logged_sweep, page):
    url, experiment_id, parent, _ = logged_sweep
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}/artifacts/report/report.html")
    report = page.frame_locator("iframe.mlflow-html-iframe")
    report.locator("h1").wait_for()
    assert report.locator("h1").inner_text() == "Sweep report: tiny"
    images = report.locator("img")
    images.first.wait_for()
    assert images.count() == 6  # five figures of the trials and the winner's test forecasts against the actual values
    widths = images.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
    page.screenshot(path=str(SHOTS / "report-artifact.png"))
    assert all(width > 300 for width in widths), widths
