"""The sweep's winner as an MLflow pyfunc model that predicts from raw rows, preprocessing bundled.

    model = mlflow.pyfunc.load_model("models:/co2-forecaster/1")
    model.predict(raw_rows)            # the last `lookback` (or more) rows of a series, in the data's own units
    #    step     co2                  # the next `horizon` values of each target, on the original scale
    # 0     1  367.91                  # (with data.id_column: one block per series; classify: a label per sequence)
    # 1     2  368.05

Raw rows become model inputs through `lstm_ray.data.inference.model_inputs`, with the preprocessing state of
training (arrangement, categories, gaps, scaler): nothing is fitted at prediction time.
Rows are taken as a CSV gives them (times as text or datetimes, numbers whole or decimal; `csv_signature`).
The model folder holds the network (`network.pt`: weights, architecture, lookback, preprocessing state) and a
copy of the `lstm_ray` package, so it loads wherever MLflow, torch and pandas are installed. The trained torch
module itself: `mlflow.pyfunc.load_model(uri).unwrap_python_model().network`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

NETWORK_FILE = "network.pt"
EXAMPLE_FILE = "input_example.parquet"


class RawRowModel(mlflow.pyfunc.PythonModel):
    """Raw rows in, predictions out: the next `horizon` steps of each series (forecast), or the label of each
    sequence (classify)."""

    def load_context(self, context: Any) -> None:
        import torch

        from lstm_ray.train.models import model_from_state

        state = torch.load(context.artifacts["network"], map_location="cpu", weights_only=True)
        self.network = model_from_state(state)
        self.lookback = int(state["lookback"])
        self.preprocessing = state["preprocessing"]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Forecast: per series (id_column, or the whole frame), the rows `step` 1..horizon with every target on
        the original scale, read from the series' last `lookback` usable rows. Classify: per sequence, `label`
        and one `p_<class>` probability column. Raises lstm_ray DataError naming a missing or unusable column,
        or a series shorter than lookback."""
        return predict_rows(self.network, model_input, self.preprocessing, self.lookback)


def predict_rows(network: Any, rows: Any, preprocessing: dict[str, Any], lookback: int) -> pd.DataFrame:
    """`RawRowModel.predict` for an in-memory network (rows: a pandas DataFrame or a pyarrow Table)."""
    import torch

    from lstm_ray.data.inference import model_inputs

    inputs = model_inputs(rows, preprocessing, lookback)
    id_column = preprocessing["rows"].get("id_column")
    with torch.no_grad():
        x = torch.as_tensor(inputs.x)
        if preprocessing["task"] == "classify":
            probabilities = torch.softmax(network(x, torch.as_tensor(inputs.lengths)), dim=-1).numpy()
            return _label_frame(probabilities, preprocessing, inputs.ids if id_column else None, id_column)
        return _forecast_frame(network(x).numpy(), preprocessing, inputs.ids if id_column else None, id_column)


def _forecast_frame(scaled: np.ndarray, preprocessing: dict[str, Any], ids: list | None, id_column: str | None):
    """(series, horizon, targets) scaled predictions as one row per series and step, on the original scale."""
    from lstm_ray.data.preprocess import Scaler, unlog_targets

    columns, targets = preprocessing["columns"], preprocessing["targets"]
    values = Scaler.from_state(preprocessing["scaler"]).inverse(scaled, [columns.index(c) for c in targets])
    values = unlog_targets(values, preprocessing.get("target_transform", "none"))  # models logged before: none
    series, horizon = values.shape[:2]
    frame = pd.DataFrame(values.reshape(series * horizon, -1), columns=targets)
    frame.insert(0, "step", np.tile(np.arange(1, horizon + 1), series))
    if ids is not None:
        frame.insert(0, id_column, np.repeat(np.asarray(ids, dtype=object), horizon))
    return frame


def _label_frame(probabilities: np.ndarray, preprocessing: dict[str, Any], ids: list | None, id_column: str | None):
    names = [str(name) for name in preprocessing["class_names"]]
    frame = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in names])
    frame.insert(0, "label", [names[i] for i in probabilities.argmax(axis=1)])
    if ids is not None:
        frame.insert(0, id_column, ids)
    return frame


def raw_example(source: str, preprocessing: dict[str, Any], lookback: int) -> pd.DataFrame:
    """A request the model answers, cut from the data itself: the last series' (or sequence's) final rows,
    as few as the model needs, with only the columns it reads."""
    from lstm_ray.data.inference import model_inputs
    from lstm_ray.data.sources import read_table
    from lstm_ray.errors import DataError

    spec = preprocessing["rows"]
    history = spec["targets"] if spec["lags"] or spec["differences"] else []
    wanted = [*spec["numeric"], *spec["categorical"], *history, spec["id_column"], spec["time_column"]]
    table = read_table(source).to_pandas()
    rows = table[[c for c in dict.fromkeys(wanted) if c in table.columns]]
    if spec["id_column"]:
        rows = rows[rows[spec["id_column"]] == rows[spec["id_column"]].iloc[-1]]
    if spec["time_column"]:
        rows = rows.sort_values(spec["time_column"], kind="stable")
    count = lookback if preprocessing["task"] == "forecast" else len(rows)
    while True:  # lags, differences and dropped gaps spend rows: grow the tail until a window fits
        example = rows.tail(count).reset_index(drop=True)
        try:
            model_inputs(example, preprocessing, lookback)
            return example
        except DataError:
            if count >= len(rows):
                raise
            count *= 2


def stage_serving_model(
    folder: Path, model: Any, example: pd.DataFrame, preprocessing: dict[str, Any], lookback: int
) -> Path:
    """Write what `log_serving_model` needs into `folder`: the network file and the raw-row input example."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "model_args": model.model_args, "lookback": int(lookback)}
    torch.save(state | {"preprocessing": preprocessing}, folder / NETWORK_FILE)
    example.to_parquet(folder / EXAMPLE_FILE)
    return folder


def log_serving_model(tracking_uri: str, run_id: str, folder: str, register_as: str | None) -> str:
    """Log the model staged in `folder` as `model` on run `run_id` (registering it if asked); its model URI."""
    import torch

    from lstm_ray.train.models import model_from_state

    example = pd.read_parquet(Path(folder) / EXAMPLE_FILE)
    state = torch.load(Path(folder) / NETWORK_FILE, map_location="cpu", weights_only=True)
    output = predict_rows(model_from_state(state), example, state["preprocessing"], state["lookback"])
    code = _package_copy(Path(folder) / "code")
    with _tracking_uri(tracking_uri), _quiet_model_logging(), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=RawRowModel(),
            artifacts={"network": str(Path(folder) / NETWORK_FILE)},
            code_paths=[str(code)],
            signature=csv_signature(example, output),
            input_example=example,
            registered_model_name=register_as,
            pip_requirements=_requirements(),
        )
    return info.model_uri


def csv_signature(example: pd.DataFrame, output: pd.DataFrame) -> mlflow.models.ModelSignature:
    """The model's signature, with every column a CSV may type two ways declared `Any`: times (text, as
    `pd.read_csv` gives them, or datetimes) and decimal numbers (whole ones come as integers, which MLflow
    refuses for a `double` column). The model's own checks read those columns and raise DataError naming a
    bad one; MLflow still requires every column. Models logged with the inferred signature (datetime, double)
    keep it: they take `pd.read_csv(path, parse_dates=[time column])` with decimal numbers."""
    signature = mlflow.models.infer_signature(example, output)
    loose = (DataType.datetime, DataType.double)
    signature.inputs = Schema(
        [ColSpec(AnyType(), c.name, c.required) if c.type in loose else c for c in signature.inputs.inputs]
    )
    return signature


def _package_copy(folder: Path) -> Path:
    """A copy of the lstm_ray package without its bundled data sets, shipped inside the model."""
    package = Path(__file__).resolve().parent.parent  # lstm_ray/, found without importing the layer above
    target = folder / "lstm_ray"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "sets"))
    return target


def _requirements() -> list[str]:
    """Pinned from this environment: inferring them would load the model in a subprocess (seconds)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "torch", "numpy", "pandas", "pyarrow")]


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """`uri` as the process-wide tracking URI for the block, then what was there before (set or not).

    MLflow 3.17's model logging (`Model.log`, under `pyfunc.log_model`) reads the process-wide tracking URI and
    takes none of its own; registering reads the registry URI, which defaults to it."""
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


@contextlib.contextmanager
def _quiet_model_logging():
    """Silence MLflow's notes on pickling, example validation, requirements and registration."""
    names = ("mlflow.models.model", "mlflow.utils.requirements_utils", "mlflow.pyfunc", "mlflow.store.model_registry")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
