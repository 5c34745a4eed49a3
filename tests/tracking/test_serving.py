"""tracking/serving.py: the logged raw-row model takes rows as a CSV gives them, through pyfunc and as a
JSON request, and models logged before keep the types they were logged with."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO
from mlflow.types import DataType
from test_security import logged_raw_row_model

from lstm_ray.errors import DataError
from lstm_ray.tracking.serving import EXAMPLE_FILE

OLD_MODEL = REPO / "tests" / "fixtures" / "raw-row-model-flat-layout.tar.gz"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny co2 forecaster logged as a sweep logs its winner: (pyfunc model, model URI, its input example
    as a CSV file written by pandas)."""
    from conftest import TINY

    from lstm_ray.config import parse_config

    folder = tmp_path_factory.mktemp("serving")
    _, _, model_uri, staged = logged_raw_row_model(parse_config(TINY), folder)
    csv = folder / "latest_weeks.csv"
    pd.read_parquet(staged / EXAMPLE_FILE).to_csv(csv, index=False)
    return mlflow.pyfunc.load_model(model_uri), model_uri, csv


def test_the_time_column_is_taken_as_csv_text_or_as_datetimes_with_the_same_forecast(served):
    model, _, csv = served
    text = pd.read_csv(csv)
    assert pd.api.types.is_string_dtype(text["date"])  # what the README's snippet hands the model
    dated = pd.read_csv(csv, parse_dates=["date"])
    pd.testing.assert_frame_equal(model.predict(text), model.predict(dated))


def test_whole_numbers_in_a_decimal_column_are_taken_as_a_csv_gives_them(served):
    model, _, csv = served
    rows = pd.read_csv(csv)
    whole = rows.assign(co2=rows["co2"].round().astype("int64"))  # a CSV of 371, 372, ... reads as int64
    expected = model.predict(rows.assign(co2=whole["co2"].astype("float64")))
    pd.testing.assert_frame_equal(model.predict(whole), expected)


def test_the_logged_json_request_example_answers(served):
    _, model_uri, _ = served
    request = (Path(mlflow.artifacts.download_artifacts(model_uri)) / "serving_input_example.json").read_text()
    answer = mlflow.models.validate_serving_input(model_uri, request)  # what `mlflow models serve` does with it
    assert list(answer.columns) == ["step", "co2"] and len(answer) == 2


def test_unreadable_times_and_missing_columns_are_refused_by_name(served):
    model, _, csv = served
    rows = pd.read_csv(csv)
    with pytest.raises(DataError, match="data.time_column: column 'date' cannot be read as times"):
        model.predict(rows.assign(date="last week"))
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"missing inputs \['date'\]"):
        model.predict(rows.drop(columns="date"))


def test_a_model_logged_with_a_datetime_signature_takes_csv_rows_with_parsed_dates(tmp_path):
    """Models logged before the time column was declared `Any` keep their signature: what the docs tell
    their users to pass works."""
    with tarfile.open(OLD_MODEL) as archive:
        archive.extractall(tmp_path, filter="data")
    folder = tmp_path / "model"
    example = json.loads((folder / "input_example.json").read_text())
    csv = tmp_path / "latest_weeks.csv"
    pd.DataFrame(example["data"], columns=example["columns"]).to_csv(csv, index=False)
    model = mlflow.pyfunc.load_model(str(folder))
    assert model.metadata.signature.inputs.input_dict()["date"].type == DataType.datetime
    predicted = model.predict(pd.read_csv(csv, parse_dates=["date"]))
    expected = pd.read_csv(folder / "expected.csv")
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), expected, check_dtype=False, atol=1e-4)
