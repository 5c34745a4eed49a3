"""Pretrained token vectors for the embedding layer, read from a text vector file (GloVe or word2vec text format).

    vectors = read_vectors("glove.6B.50d.txt")
    ids = vectors.encode(["the", "cat", "zyzzyva"])  # [2, 3, 1]: unknown tokens map to 1
    model = build_model(cfg.model, n_inputs=1, n_classes=2, vectors=vectors.matrix)
    check_embedding(cfg.model, data)  # before Ray: the file reads and the data has a token column to embed

Each line is `token v1 v2 ... vd`; a word2vec header line `count dim` is skipped. Id 0 is padding (a zero
vector) and id 1 stands for every token the file does not hold (the mean vector); the file's tokens follow
in file order from id 2, which is the id mapping a token column must be encoded with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_ray.config import ModelConfig
from lstm_ray.data.prepared import PreparedData
from lstm_ray.errors import DataError

PADDING, UNKNOWN = 0, 1
KEY = "model.embedding_vectors"


@dataclass
class Vectors:
    tokens: list[str]  # the file's tokens; token i has id i + 2
    matrix: np.ndarray  # (len(tokens) + 2, dim) float32: padding, unknown, then the tokens
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {token: i + 2 for i, token in enumerate(self.tokens)}

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(token, UNKNOWN) for token in tokens]


def check_embedding(model: ModelConfig, data: PreparedData) -> None:
    """Raise DataError unless `data` can feed the embedding `model` asks for: its vector file reads, and the first
    input column holds token ids (a data.categorical column with data.categorical_encoding: index) that fit
    model.vocab_size. Nothing to check without an embedding."""
    if model.embedding_vectors:
        read_vectors(model.embedding_vectors)
    if not (model.embedding_dim or model.embedding_vectors):
        return
    key = "model.embedding_dim" if model.embedding_dim else KEY
    first = data.input_columns[0] if data.input_columns else None
    if first not in data.embeddings:
        raise DataError(
            key,
            f"embeds the first input column as token ids, but {first!r} holds numbers: there is no categorical "
            "column to embed; make a data.categorical column (data.categorical_encoding: index) the only feature, "
            "or set model.embedding_dim: 0",
        )
    codes = data.embeddings[first]
    if not model.embedding_vectors and codes > model.vocab_size:
        raise DataError(
            "model.vocab_size",
            f"{first!r} has {codes} token ids (0 for unknown), more than model.vocab_size {model.vocab_size}; "
            f"set model.vocab_size: {codes}",
        )


def read_vectors(path: str | Path) -> Vectors:
    """Read a text vector file; raises DataError naming the line when a row is malformed or the file is empty
    or not UTF-8 text."""
    try:
        return _read_vectors(path)
    except UnicodeDecodeError as err:
        raise DataError(
            KEY, f"{path} is not UTF-8 text (byte {err.start} of a line); save the vector file as UTF-8"
        ) from None


def _read_vectors(path: str | Path) -> Vectors:
    tokens: list[str] = []
    rows: list[np.ndarray] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: count and dimension
            if not line.strip():
                continue
            rows.append(_row(parts, number, path, len(rows[0]) if rows else None))
            tokens.append(parts[0])
    if not rows:
        raise DataError(KEY, f"{path} holds no vectors; expected lines of `token v1 v2 ...`")
    vectors = np.stack(rows)
    special = np.stack([np.zeros(vectors.shape[1]), vectors.mean(axis=0)])
    return Vectors(tokens, np.concatenate([special, vectors]).astype(np.float32))


def _row(parts: list[str], number: int, path: str | Path, dim: int | None) -> np.ndarray:
    try:
        row = np.array([float(v) for v in parts[1:]])
    except ValueError:
        raise DataError(KEY, f"{path} line {number} is not `token v1 v2 ...` with numbers") from None
    if len(row) == 0 or (dim is not None and len(row) != dim):
        raise DataError(KEY, f"{path} line {number} has {len(row)} numbers, expected {dim or 'at least 1'}")
    if not np.isfinite(row).all():
        raise DataError(KEY, f"{path} line {number} holds a NaN or infinite number; every vector must be finite")
    return row
