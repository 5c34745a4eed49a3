"""The command line: one clear error line and exit code 2 for bad input, before Ray or data loading; the listing,
version and review lines a new user reads."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from cli_runs import run_cli
from conftest import REPO

from lstm_ray.cli import main, review_command

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def test_validate_says_ok_for_the_quickstart():
    done = run_cli("validate", QUICKSTART)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: quickstart")
    assert (
        "baselines to beat (val_rmse on the validation windows): last_value 0.9408, seasonal 1.479, drift 1.101"
        in done.stdout
    )
    assert "NO_RAY" in done.stderr


def test_validate_reports_the_gaps_it_fills():
    done = run_cli("validate", QUICKSTART)
    assert (
        "  data.missing: 59 of 'co2' values missing in the source, filled by interpolate "
        "(linear between the known neighbours)" in done.stdout.splitlines()
    ), done.stdout


def test_version_prints_the_installed_version():
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout == f"lstm-ray {version('lstm-ray')}\n", done.stdout


def test_datasets_config_lines_pass_validate(tmp_path, capsys):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert "  columns: target co2, time_column date; features co2\n" in listing
    assert "  columns: target label, id_column sequence_id, time_column step, split_column split; features lpc1," in (
        listing
    )
    lines = [line.removeprefix("  config:  ") for line in listing.splitlines() if line.startswith("  config:  ")]
    assert len(lines) == 4
    for line in lines:
        config = tmp_path / "pasted.yaml"
        config.write_text(f"name: pasted\n{line}\n")
        assert main(["validate", str(config)]) == 0, line
        assert capsys.readouterr().out.startswith("OK: pasted: builtin:")


def test_the_review_line_runs_the_mlflow_beside_this_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no Makefile here: no `make ui`
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv not activated, as after `make demo`
    executable, *args = shlex.split(review_command("sqlite:///mlflow.db"))
    found = Path(executable if os.sep in executable else shutil.which(executable) or executable)
    assert found.is_file() and os.access(found, os.X_OK), executable
    assert found.parent == Path(sys.executable).parent
    assert args == ["ui", "--backend-store-uri", f"sqlite:///{tmp_path.resolve()}/mlflow.db"]


def test_the_review_line_offers_make_ui_in_the_checkout(monkeypatch):
    monkeypatch.chdir(REPO)
    assert review_command("sqlite:///mlflow.db").endswith("   (or: make ui)")
    assert "make ui" not in review_command("sqlite:///elsewhere.db")  # `make ui` opens ./mlflow.db only
    assert review_command("http://127.0.0.1:5000") == "open http://127.0.0.1:5000 in a browser"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.dropout=1.5", "model.dropout: must be in [0, 1), got 1.5"),
        ("search.algorithm=bayes", "search.algorithm: 'bayes' is not one of"),
        ("data.source=missing.csv", "data.source: 'missing.csv' not found"),
        ("data.source=builtin:nope", "unknown builtin data set 'nope'"),
        ("data.target=nope", "data.target: column 'nope' not in the data"),
        ("data.lookback=5000", "data.lookback:"),
        ("search.space.train.lr={loguniform: [0, 1]}", "search.space.train.lr: loguniform needs low > 0"),
        ("nonsense", "--set: expected KEY=VALUE"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "tune"])
def test_bad_input_is_one_line_exit_2_no_traceback_no_ray(command, override, expected):
    done = run_cli(command, QUICKSTART, "--set", override)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line != "NO_RAY"]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert "NO_RAY" in done.stderr


def test_missing_config_file_is_explained(tmp_path):
    done = run_cli("validate", str(tmp_path / "absent.yaml"))
    assert done.returncode == 2 and "not found" in done.stderr


def test_bad_data_file_is_explained(tmp_path):
    bad = tmp_path / "series.csv"
    bad.write_text("t,y\n1,a\n2,b\n")
    done = run_cli(
        "validate",
        QUICKSTART,
        "--set",
        f"data.source={bad}",
        "--set",
        "data.target=y",
        "--set",
        "data.time_column=t",
    )
    assert done.returncode == 2 and "column 'y' is string, not numeric" in done.stderr
