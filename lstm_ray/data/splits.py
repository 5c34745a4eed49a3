"""Train / val / test splits and cross-validation folds, as one code per row (forecast) or per sequence (classify).

    codes = forecast_codes(offsets, 0.15, 0.15)        # chronological within every series
    folds = forecast_folds(codes, offsets, 5, "expanding")

Codes: TRAIN 0, VAL 1, TEST 2; in a fold, UNUSED -1 marks rows the fold neither trains nor validates on.
The test split is never part of a fold, and a forecast fold never trains on rows after its validation rows.
"""

from __future__ import annotations

import numpy as np

from lstm_ray.errors import DataError

__all__ = [
    "SPLIT_CODES",
    "TEST",
    "TRAIN",
    "UNUSED",
    "VAL",
    "classify_codes",
    "classify_folds",
    "forecast_codes",
    "forecast_folds",
    "marked_codes",
]

TRAIN, VAL, TEST, UNUSED = 0, 1, 2, -1
SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}


def marked_codes(marks: np.ndarray) -> np.ndarray:
    """Codes from a split column's values (train, val or test). Raises DataError for any other value."""
    codes = np.array([SPLIT_CODES.get(str(m).strip().lower(), UNUSED) for m in marks.tolist()], dtype=np.int64)
    if (codes == UNUSED).any():
        bad = marks[codes == UNUSED][0]
        raise DataError("data.split_column", f"value {bad!r} is not train, val or test; mark every row with one")
    if not (codes == TEST).any():
        raise DataError("data.split_column", "marks no test rows; mark the held-out rows test")
    return codes


def forecast_codes(
    offsets: np.ndarray, val_fraction: float, test_fraction: float, marked: np.ndarray | None = None
) -> np.ndarray:
    """Per-row codes: each series split chronologically into train | val | test by the fractions, or as
    `marked` says (then val, when none is marked, is the last `val_fraction` of each series' train rows).
    Raises DataError when marks within a series are out of time order."""
    codes = np.zeros(offsets[-1], dtype=np.int64)
    carve = marked is not None and not (marked == VAL).any()
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        if marked is None:
            codes[start:end] = _chronological(end - start, val_fraction, test_fraction)
            continue
        part = marked[start:end]
        if (np.diff(part) < 0).any():
            raise DataError(
                "data.split_column",
                "within a series the marks must run train, then val, then test in time order; fix the marks",
            )
        codes[start:end] = part
        if carve:
            n_train = int((part == TRAIN).sum())
            n_val = round(n_train * val_fraction) if n_train > 1 else 0
            codes[start + n_train - n_val : start + n_train] = VAL
    return codes


def _chronological(n: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    if n - n_val - n_test < 1:
        return np.full(n, TRAIN)  # too short to split: it can only help training
    return np.repeat([TRAIN, VAL, TEST], [n - n_val - n_test, n_val, n_test])


def classify_codes(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int, marked: np.ndarray | None = None
) -> np.ndarray:
    """Per-sequence codes: a split stratified by label (each class split by the fractions), or as `marked`
    says (then val, when none is marked, is a stratified `val_fraction` of the train sequences)."""
    rng = np.random.default_rng(seed)
    if marked is not None:
        codes = marked.copy()
        if not (codes == VAL).any():
            train = np.flatnonzero(codes == TRAIN)
            for members in _by_class(labels[train], rng):
                codes[train[members[: round(len(members) * val_fraction)]]] = VAL
        return codes
    codes = np.full(len(labels), TRAIN, dtype=np.int64)
    for members in _by_class(labels, rng):
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * val_fraction)
        codes[members[:n_test]] = TEST
        codes[members[n_test : n_test + n_val]] = VAL
    for split, code in SPLIT_CODES.items():
        if not (codes == code).any():
            raise DataError(
                f"data.{split}_fraction" if split != "train" else "data.val_fraction",
                f"leaves the {split} split without sequences ({len(labels)} in all); raise it or add data",
            )
    return codes


def classify_folds(codes: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Stratified k-fold over the train and val sequences; test sequences are UNUSED in every fold."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(codes != TEST)
    if folds > len(pool):  # checked before allocating a code array per fold
        raise DataError("data.folds", f"{folds} folds leave some fold empty ({len(pool)} sequences); use fewer")
    fold_of = np.empty(len(pool), dtype=np.int64)
    offset = 0
    for members in _by_class(labels[pool], rng):
        fold_of[members] = (offset + np.arange(len(members))) % folds  # continue the rotation across classes
        offset += len(members)
    result = []
    for k in range(folds):
        fold = np.full(len(codes), UNUSED, dtype=np.int64)
        fold[pool] = np.where(fold_of == k, VAL, TRAIN)
        if not (fold == VAL).any():
            raise DataError("data.folds", f"{folds} folds leave fold {k} empty ({len(pool)} sequences); use fewer")
        result.append(fold)
    return result


def forecast_folds(codes: np.ndarray, offsets: np.ndarray, folds: int, scheme: str) -> list[np.ndarray]:
    """Walk-forward folds over each series' train and val rows. Validation blocks have the size of the series'
    val split and end where the test split begins, the last fold's block being the val split itself; fold k
    trains on every earlier row (expanding) or on the same number of rows just before its block as the first
    fold has (sliding). Raises DataError when the series are too short for that many folds."""
    if folds >= len(codes):  # checked before allocating a code array per fold
        raise DataError("data.folds", f"{folds} folds cannot fit in {len(codes)} rows; lower data.folds")
    result = [np.full(len(codes), UNUSED, dtype=np.int64) for _ in range(folds)]
    used = 0
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        part = codes[start:end]
        n_known, block = int((part != TEST).sum()), int((part == VAL).sum())
        first_train = n_known - folds * block
        if block == 0 or first_train < 1:
            continue
        used += 1
        for k, fold in enumerate(result):
            val_start = start + first_train + k * block
            train_start = start if scheme == "expanding" else val_start - first_train
            fold[train_start:val_start] = TRAIN
            fold[val_start : val_start + block] = VAL
    if used == 0:
        raise DataError(
            "data.folds",
            f"no series is long enough for {folds} folds of the val split's size; lower data.folds or "
            "data.val_fraction",
        )
    return result


def _by_class(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled positions of each class, classes in sorted order."""
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
