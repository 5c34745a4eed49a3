"""Starting from earlier weights: checkpoints and MLflow model URIs, mismatches explained, frozen parts kept."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.train.training import Trainer, evaluate, seed_everything
from lstm_ray.train.transfer import CHECKPOINT_FILE, assemble_model, load_source

CPU = torch.device("cpu")


def experiment(tiny_raw, **model):
    raw = copy.deepcopy(tiny_raw)
    raw["model"] |= {"hidden_size": 16} | model
    raw["train"] |= {"max_epochs": 10, "batch_size": 32, "lr": 0.01}
    return parse_config(raw)


def trained_checkpoint(cfg, windows, folder, horizon=1):
    seed_everything(0)
    trainer = Trainer(assemble_model(cfg, 1, 1, horizon), windows, cfg.train, device=CPU)
    while not trainer.done:
        trainer.run_epoch()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(trainer.state(), folder / CHECKPOINT_FILE)
    return trainer.model


def test_a_model_from_an_earlier_run_starts_lower_on_a_related_series(tiny_raw, tmp_path, sine_windows):
    source = experiment(tiny_raw)
    trained_checkpoint(source, sine_windows(phase=0.0), tmp_path / "run")
    related = sine_windows(phase=2.0, amplitude=0.9)
    seed_everything(1)
    scratch = assemble_model(source, 1, 1, 1)
    warm = assemble_model(experiment(tiny_raw, init_from=str(tmp_path / "run")), 1, 1, 1)
    scratch_rmse = evaluate(scratch, related["val"], lambda y: y, CPU)["rmse"]
    warm_rmse = evaluate(warm, related["val"], lambda y: y, CPU)["rmse"]
    assert warm_rmse < 0.5 * scratch_rmse


def test_a_shape_mismatch_is_explained_with_the_keys_to_fix(tiny_raw, tmp_path, sine_windows):
    trained_checkpoint(experiment(tiny_raw, hidden_size=8), sine_windows(), tmp_path / "run")
    with pytest.raises(ConfigError) as err:
        assemble_model(experiment(tiny_raw, hidden_size=16, init_from=str(tmp_path / "run" / CHECKPOINT_FILE)), 1)
    message = str(err.value)
    assert message.startswith("model.init_from:")
    assert "rnn.weight_hh_l0 is (32, 8) in the source but (64, 16) here" in message
    assert "model.hidden_size" in message and "Traceback" not in message


def test_a_head_of_another_horizon_starts_fresh_while_the_recurrent_layers_transfer(tiny_raw, tmp_path, sine_windows):
    source = trained_checkpoint(experiment(tiny_raw), sine_windows(), tmp_path / "run")
    model = assemble_model(experiment(tiny_raw, init_from=str(tmp_path / "run")), 1, 1, horizon=3)
    assert torch.equal(model.rnn.weight_hh_l0, source.rnn.weight_hh_l0)
    assert model.head.out_features == 3


def test_frozen_transferred_layers_stay_as_the_source_left_them(tiny_raw, tmp_path, sine_windows):
    source = trained_checkpoint(experiment(tiny_raw), sine_windows(), tmp_path / "run")
    cfg = experiment(tiny_raw, init_from=str(tmp_path / "run"), freeze=["recurrent"])
    model = assemble_model(cfg, 1, 1, 1)
    head_before = model.head.weight.detach().clone()
    trainer = Trainer(model, sine_windows(phase=1.0), cfg.train, device=CPU)
    trainer.run_epoch()
    for name, value in source.rnn.state_dict().items():
        assert torch.equal(model.rnn.state_dict()[name], value), name
    assert not torch.equal(model.head.weight, head_before)


def test_a_path_that_is_no_checkpoint_is_refused(tmp_path):
    (tmp_path / "notes.pt").write_bytes(b"")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="no checkpoint at"):
        load_source(str(tmp_path / "empty-folder"))
    with pytest.raises(ConfigError, match="not an lstm-ray checkpoint"):
        load_source(str(tmp_path / "other.pt"))


@pytest.mark.slow
def test_mlflow_run_and_registry_uris_load_the_logged_weights(tiny_raw, tmp_path, sine_windows):
    import mlflow
    import mlflow.pytorch

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    source = trained_checkpoint(experiment(tiny_raw), sine_windows(), tmp_path / "run").eval()
    with mlflow.start_run() as run:
        mlflow.pytorch.log_model(
            source, name="model", input_example=sine_windows()["val"].x[:4], registered_model_name="sine"
        )
    for model_uri in (f"runs:/{run.info.run_id}/model", "models:/sine/1"):
        weights = load_source(model_uri, uri)
        assert set(weights) == set(source.state_dict())
        assert all(torch.equal(weights[k], v) for k, v in source.state_dict().items())
    with pytest.raises(ConfigError, match="cannot load 'models:/sine/7'"):
        load_source("models:/sine/7", uri)
    raw = copy.deepcopy(tiny_raw) | {"tracking": {"uri": uri}}
    model = assemble_model(experiment(raw, init_from="models:/sine/1"), 1)
    x = torch.as_tensor(np.asarray(sine_windows()["val"].x[:5]))
    assert torch.equal(model.eval()(x), source(x))
