"""Starting a model from earlier work: pretrained token vectors, an earlier run's weights, frozen parts.

    model = assemble_model(cfg, n_inputs=1, n_targets=1, horizon=4)   # what a trial trains
    network = load_network("models:/co2-forecaster/1", tracking_uri)   # a logged model's torch module

`model.init_from` takes an MLflow model URI (`runs:/RUN_ID/model`, `models:/NAME/VERSION`, read from
`tracking.uri`) or a checkpoint (a `checkpoint.pt` file, or the Tune checkpoint folder holding one). The
recurrent layers and the embedding must match the source exactly; a pooling or output head of another
shape (another horizon, target count or number of classes) starts fresh. Any other mismatch raises a
ConfigError naming each tensor, both shapes and the config keys that decide them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lstm_ray.config import ExperimentConfig
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.redaction import redact
from lstm_ray.train.embeddings import read_vectors
from lstm_ray.train.models import SequenceModel, build_model, model_from_state, part_of

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", re.S)
MLFLOW_SCHEMES = ("runs:/", "models:/")
REPLACEABLE = ("attention", "head")  # parts that may start fresh when the source's differ
DECIDED_BY = {
    "embedding": "model.embedding_dim / model.vocab_size",
    "recurrent": "model.cell, model.hidden_size, model.num_layers, model.bidirectional, model.proj_size "
    "and the input features",
}


def assemble_model(
    cfg: ExperimentConfig,
    n_inputs: int,
    n_targets: int = 1,
    horizon: int = 1,
    n_classes: int = 0,
    frame: dict | None = None,
) -> SequenceModel:
    """The model a trial of `cfg` starts training from: built, given its vectors, initialised, parts frozen."""
    vectors = read_vectors(cfg.model.embedding_vectors).matrix if cfg.model.embedding_vectors else None
    model = build_model(cfg.model, n_inputs, n_targets, horizon, n_classes=n_classes, vectors=vectors, frame=frame)
    if cfg.model.init_from:
        source = load_source(cfg.model.init_from, cfg.tracking.uri)
        initialise_from(model, source, cfg.model.init_from)
    return model


def load_source(source: str, tracking_uri: str | None = None) -> dict[str, torch.Tensor]:
    """The weights (a state dict) of an MLflow model URI or a checkpoint file or folder."""
    if source.startswith(MLFLOW_SCHEMES):
        return _mlflow_weights(source, tracking_uri)
    path = Path(source)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError("model.init_from", f"no checkpoint at {str(path)!r}; give a checkpoint.pt or its folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # code, not weights only; or bytes that are no checkpoint (KeyError, EOFError, ...)
        raise ConfigError(
            "model.init_from",
            f"{str(path)!r} does not load as weights only ({_load_error(err)}); "
            "give the checkpoint.pt of an lstm-ray trial or its folder",
        ) from None
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ConfigError("model.init_from", f"{str(path)!r} is not an lstm-ray checkpoint (no 'model' weights)")
    return weights


def check_init_from(cfg: ExperimentConfig) -> None:
    """Open model.init_from as every trial will (`load_source`), so a source that does not load is one ConfigError
    before Ray starts, not a failure in each trial."""
    if cfg.model.init_from:
        load_source(cfg.model.init_from, cfg.tracking.uri)


def _load_error(err: Exception) -> str:
    """torch.load's reason in a line: for the weights-only unpickler, its own few words from a page of advice."""
    found = UNPICKLER_DETAIL.search(str(err))
    return f"{type(err).__name__}: {one_line(found[1] if found else err, 120)}"


def initialise_from(model: torch.nn.Module, source: dict[str, torch.Tensor], name: str) -> list[str]:
    """Copy `source` weights into `model`; returns the parts that start fresh because the source lacks them.

    Raises ConfigError, explaining every mismatch, when the embedding or recurrent layers do not fit.
    """
    target = model.state_dict()
    problems: dict[str, str] = {}
    fresh: set[str] = set()
    for key, tensor in target.items():
        theirs = source.get(key)
        if theirs is not None and theirs.shape == tensor.shape:
            continue
        part = part_of(key)[0]
        if part in REPLACEABLE:
            fresh.add(part)
            continue
        problems[key] = _describe(key, tensor, theirs)
    if problems:
        decided = sorted({DECIDED_BY[part_of(key)[0]] for key in problems})
        raise ConfigError(
            "model.init_from",
            f"{name} does not fit this model: {'; '.join(problems.values())}. Set {' and '.join(decided)} as "
            "in the source run",
        )
    usable = {k: v for k, v in source.items() if k in target and part_of(k)[0] not in fresh}
    model.load_state_dict(usable, strict=False)
    if fresh:
        log.info("model.init_from %s: %s start fresh (their shape differs from the source's)", name, sorted(fresh))
    return sorted(fresh)


def _describe(key: str, ours: torch.Tensor, theirs: torch.Tensor | None) -> str:
    if theirs is None:
        return f"{key} {tuple(ours.shape)} is missing from the source"
    return f"{key} is {tuple(theirs.shape)} in the source but {tuple(ours.shape)} here"


def _mlflow_weights(uri: str, tracking_uri: str | None) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException  # imported first: importing mlflow sets its loggers' levels

    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    mlflow_log.setLevel(logging.WARNING)  # a new SQLite store logs its tables' creation: an error stays one line
    try:
        model = load_network(uri, tracking_uri)
    except (MlflowException, OSError, KeyError) as err:  # no such run or model; a model without our network.pt
        raise ConfigError(
            "model.init_from",
            f"cannot load {uri!r} from {redact(tracking_uri)}: {one_line(err, 200)}; give a logged model of an "
            "lstm-ray sweep (runs:/RUN_ID/model, models:/NAME/VERSION) in tracking.uri's store",
        ) from None
    finally:
        mlflow_log.setLevel(level)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_network(model_uri: str, tracking_uri: str | None = None) -> torch.nn.Module:
    """The torch module behind an MLflow model URI, with nothing unpickled that could run code: a sweep's raw-row
    model from its `network.pt` (weights only, not the pyfunc wrapper MLflow pickles), any other MLflow PyTorch
    model when saved in MLflow's pickle-free pt2 format. Raises MlflowException for a PyTorch model saved with
    pickle, unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true says it is trusted.

    The model is downloaded from `tracking_uri` (default: the process-wide tracking URI, also for `models:/`
    names) into a temporary folder and loaded from there; the process-wide tracking URI is left as it is.
    """
    import mlflow.pytorch
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="lstm-ray-init-from-") as local:
        folder = download_artifacts(
            artifact_uri=model_uri, dst_path=local, tracking_uri=tracking_uri, registry_uri=tracking_uri
        )
        flavors = Model.load(folder).flavors
        if "pytorch" in flavors:
            with _pickle_refused():
                return mlflow.pytorch.load_model(folder, map_location="cpu")
        network = flavors["python_function"]["artifacts"]["network"]["path"]
        return model_from_state(torch.load(Path(folder) / network, map_location="cpu", weights_only=True))


@contextlib.contextmanager
def _pickle_refused() -> Iterator[None]:
    """MLflow unpickles a PyTorch model saved with pickle (which can run any code) unless told not to: tell it,
    unless the user has decided."""
    name = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    if name in os.environ:
        yield
        return
    os.environ[name] = "false"
    try:
        yield
    finally:
        os.environ.pop(name, None)
