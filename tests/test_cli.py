"""The command line: one clear error line and exit code 2 for bad input, before Ray or data loading."""

from __future__ import annotations

import pytest
from cli_runs import run_cli
from conftest import REPO

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
