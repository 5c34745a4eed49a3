"""Splits and folds: chronological per series, stratified per class, folds that never train on the future."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_ray.data.splits import (
    TEST,
    TRAIN,
    UNUSED,
    VAL,
    classify_codes,
    classify_folds,
    forecast_codes,
    forecast_folds,
    marked_codes,
)
from lstm_ray.errors import DataError


def test_each_series_is_split_chronologically():
    codes = forecast_codes(np.array([0, 100, 120]), 0.15, 0.15)
    assert codes[:100].tolist() == [TRAIN] * 70 + [VAL] * 15 + [TEST] * 15
    assert codes[100:].tolist() == [TRAIN] * 14 + [VAL] * 3 + [TEST] * 3


def test_marked_rows_keep_their_split_and_val_is_carved_from_the_end_of_train():
    marked = marked_codes(np.array(["train"] * 10 + ["test"] * 2, dtype=object))
    codes = forecast_codes(np.array([0, 12]), 0.2, 0.15, marked)
    assert codes.tolist() == [TRAIN] * 8 + [VAL] * 2 + [TEST] * 2


def test_marks_out_of_time_order_are_refused():
    marked = marked_codes(np.array(["train", "test", "train"], dtype=object))
    with pytest.raises(DataError, match="data.split_column: within a series the marks must run train"):
        forecast_codes(np.array([0, 3]), 0.2, 0.2, marked)


@pytest.mark.parametrize(("marks", "expected"), [(["train", "valid"], "'valid' is not train"), (["train"], "no test")])
def test_bad_marks_are_named(marks, expected):
    with pytest.raises(DataError, match=expected):
        marked_codes(np.array(marks, dtype=object))


def test_classify_holdout_is_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [40, 20, 100])
    codes = classify_codes(labels, 0.2, 0.25, seed=3)
    for label, size in ((0, 40), (1, 20), (2, 100)):
        mine = codes[labels == label]
        assert (mine == TEST).sum() == round(size * 0.25) and (mine == VAL).sum() == round(size * 0.2)
    assert np.array_equal(codes, classify_codes(labels, 0.2, 0.25, seed=3))
    assert not np.array_equal(codes, classify_codes(labels, 0.2, 0.25, seed=4))


def test_classify_marks_without_val_carve_a_stratified_val_from_train():
    labels = np.repeat([0, 1], 20)
    marked = np.array([TRAIN] * 15 + [TEST] * 5 + [TRAIN] * 15 + [TEST] * 5)
    codes = classify_codes(labels, 0.2, 0.15, seed=0, marked=marked)
    assert (codes[marked == TEST] == TEST).all()
    assert [(codes[labels == c] == VAL).sum() for c in (0, 1)] == [3, 3]


def test_classify_folds_partition_the_non_test_sequences_stratified():
    labels = np.repeat([0, 1], [30, 15])
    codes = classify_codes(labels, 0.15, 0.2, seed=0)
    folds = classify_folds(codes, labels, folds=3, seed=0)
    val_count = np.zeros(len(labels), dtype=int)
    for fold in folds:
        assert (fold[codes == TEST] == UNUSED).all()
        assert set(fold[codes != TEST].tolist()) == {TRAIN, VAL}
        val_count += fold == VAL
        assert abs((labels[fold == VAL] == 1).mean() - 1 / 3) < 0.1  # each class keeps its share
    assert (val_count[codes != TEST] == 1).all()  # every sequence validates exactly once


@pytest.mark.parametrize("scheme", ["expanding", "sliding"])
def test_forecast_folds_never_train_on_the_future_nor_touch_test(scheme):
    offsets = np.array([0, 200, 300])
    codes = forecast_codes(offsets, 0.1, 0.15)
    folds = forecast_folds(codes, offsets, 4, scheme)
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        for fold in folds:
            part = fold[start:end]
            train, val = np.flatnonzero(part == TRAIN), np.flatnonzero(part == VAL)
            assert train.max() < val.min()
            assert (part[codes[start:end] == TEST] == UNUSED).all()
    last = folds[-1]
    assert np.array_equal(last == VAL, codes == VAL)  # the last fold validates on the holdout's val split


def test_expanding_folds_grow_and_sliding_folds_keep_their_size():
    offsets = np.array([0, 100])
    codes = forecast_codes(offsets, 0.1, 0.1)
    expanding = [int((f == TRAIN).sum()) for f in forecast_folds(codes, offsets, 3, "expanding")]
    sliding = [int((f == TRAIN).sum()) for f in forecast_folds(codes, offsets, 3, "sliding")]
    assert expanding == [60, 70, 80] and sliding == [60, 60, 60]  # 90 known rows, val blocks of 10


def test_too_many_folds_are_refused():
    offsets = np.array([0, 30])
    with pytest.raises(DataError, match="data.folds"):
        forecast_folds(forecast_codes(offsets, 0.2, 0.2), offsets, 5, "expanding")
