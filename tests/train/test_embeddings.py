"""Pretrained token vectors: reading the file, and an embedding that is frozen or fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_ray.config import ModelConfig, TrainConfig
from lstm_ray.data.windows import Windows
from lstm_ray.errors import DataError
from lstm_ray.train.embeddings import read_vectors
from lstm_ray.train.models import build_model
from lstm_ray.train.training import Trainer, seed_everything


@pytest.fixture
def vector_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\ngood 1.0 0.5\nbad -1.0 -0.5\nmeh 0.0 0.1\n")  # word2vec header, then token rows
    return path


def test_vectors_file_gives_padding_unknown_then_tokens(vector_file):
    vectors = read_vectors(vector_file)
    assert vectors.tokens == ["good", "bad", "meh"]
    assert vectors.encode(["bad", "nope", "good"]) == [3, 1, 2]
    np.testing.assert_allclose(vectors.matrix[0], [0, 0])
    np.testing.assert_allclose(vectors.matrix[1], [0, 0.1 / 3], atol=1e-7)  # unknown: the mean vector
    np.testing.assert_allclose(vectors.matrix[2:], [[1, 0.5], [-1, -0.5], [0, 0.1]])


def test_a_malformed_row_names_its_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2\nb 1\n")
    with pytest.raises(DataError, match="line 2 has 1 numbers, expected 2"):
        read_vectors(path)


def token_windows():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 5, size=(90, 6, 1)).astype(np.float32)
    labels = (ids[:, :, 0] == 2).sum(axis=1) > 2  # "good" tokens outnumber the rest
    y = labels.astype(np.int64)
    lengths = np.full(90, 6, dtype=np.int64)
    return {s: Windows(ids[a:b], y[a:b], lengths[a:b]) for s, a, b in (("train", 0, 60), ("val", 60, 90))}


@pytest.mark.parametrize("frozen", [True, False])
def test_pretrained_embedding_is_kept_or_fine_tuned(vector_file, frozen):
    vectors = read_vectors(vector_file).matrix
    seed_everything(0)
    cfg = ModelConfig(hidden_size=8, embedding_freeze=frozen)
    model = build_model(cfg, n_inputs=1, n_classes=2, vectors=vectors)
    trainer = Trainer(model, token_windows(), TrainConfig(max_epochs=1, lr=0.05), device=torch.device("cpu"))
    trainer.run_epoch()
    unchanged = torch.equal(model.embedding.weight.detach(), torch.as_tensor(vectors))
    assert unchanged == frozen
