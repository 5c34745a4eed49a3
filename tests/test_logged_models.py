"""Models logged by earlier versions of lstm-ray keep loading after the package's modules move."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import mlflow
import pandas as pd

import lstm_ray

FIXTURE = Path(__file__).parent / "fixtures" / "raw-row-model-flat-layout.tar.gz"


def test_a_model_logged_by_the_flat_layout_loads_and_predicts_in_a_process_that_imported_lstm_ray(tmp_path):
    """The fixture is a raw-row model logged by lstm-ray 0.1.0 before its modules moved into subpackages: its
    pickled wrapper names `lstm_ray.serving.RawRowModel`. MLflow puts the model's bundled code on sys.path, but
    a process that has already imported lstm_ray keeps its own package, so the old name must still resolve."""
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    folder = tmp_path / "model"
    assert lstm_ray.__file__ != str(folder / "code" / "lstm_ray" / "__init__.py")
    example = pd.read_json(folder / "input_example.json", orient="split")
    predicted = mlflow.pyfunc.load_model(str(folder)).predict(example)
    expected = pd.read_csv(folder / "expected.csv")
    assert list(predicted.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), expected, check_dtype=False, atol=1e-4)
    assert sys.modules["lstm_ray"].__file__ == lstm_ray.__file__  # the installed package served the model
