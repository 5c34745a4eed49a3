"""The trial's glue without a cluster: the right trainer for the task and validation scheme, on real data."""

from __future__ import annotations

import resource

import pytest
import torch

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.sweep.trainable import TrialOutOfMemory, _process_memory, build_trainer, memory_limit
from lstm_ray.train.crossval import FoldTrainers
from lstm_ray.train.models import model_from_state

CPU = torch.device("cpu")


def test_classify_trains_a_classifier_of_the_data_classes(tiny_raw):
    tiny_raw["data"] = {"source": "builtin:japanese_vowels", "task": "classify"}
    tiny_raw["model"] |= {"head": "attention"}
    tiny_raw["search"] |= {"metric": "val_accuracy", "mode": "max"}
    cfg = parse_config(tiny_raw)
    data = prepare_dataset(cfg.data)
    trainer = build_trainer(cfg, data, CPU)
    metrics = trainer.run_epoch()
    assert trainer.model.head.out_features == data.n_classes == 9
    assert {"val_accuracy", "val_f1", "val_auc", "val_loss"} <= set(metrics)
    val = trainer.windows["val"]
    x, lengths = torch.as_tensor(val.x[:4]), torch.as_tensor(val.lengths[:4])
    rebuilt = model_from_state(trainer.state())
    torch.testing.assert_close(rebuilt(x, lengths), trainer.model.eval()(x, lengths))


def test_cross_validation_builds_one_trainer_per_fold(tiny_raw):
    tiny_raw["data"] |= {"validation": "cv", "folds": 2}
    cfg = parse_config(tiny_raw)
    trainer = build_trainer(cfg, prepare_dataset(cfg.data), CPU)
    assert isinstance(trainer, FoldTrainers) and len(trainer.trainers) == 2
    metrics = trainer.run_epoch()
    assert "val_rmse_std" in metrics and trainer.state()["epoch"] == 1


def test_memory_limit_lets_a_trial_use_its_budget_and_fails_one_that_exceeds_it():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    # The budget counts what the process holds already: after hundreds of tests this one holds a lot.
    budget = _process_memory()[1] // 2**20 + 512
    with memory_limit(budget):
        assert torch.ones(64 * 2**20, dtype=torch.uint8)[-1] == 1
    with pytest.raises(TrialOutOfMemory, match=r"more than resources.memory_mb=\d+; lower train.batch_size"):
        with memory_limit(budget):
            torch.ones(2 * 2**30, dtype=torch.uint8)
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
