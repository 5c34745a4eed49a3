from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_ray.train.metrics import TASK_METRICS, classification_metrics, forecast_metrics


def test_forecast_errors_by_hand():
    actual = np.array([100.0, 200.0, 0.0, 50.0])
    predicted = np.array([110.0, 180.0, 0.0, 50.0])
    metrics = forecast_metrics(predicted, actual)
    assert metrics["rmse"] == pytest.approx(math.sqrt((100 + 400) / 4))
    assert metrics["mae"] == pytest.approx(30 / 4)
    assert metrics["mape"] == pytest.approx((10 / 100 + 20 / 200 + 0) / 3 * 100)  # the zero actual is skipped
    assert metrics["smape"] == pytest.approx((20 / 210 + 40 / 380 + 0 + 0) / 4 * 100)  # 0/0 counts as no error


def test_mape_is_nan_when_every_actual_is_zero():
    assert math.isnan(forecast_metrics(np.ones(3), np.zeros(3))["mape"])


def test_classification_scores_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.log(
        np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.1, 0.3]])
    )
    metrics = classification_metrics(logits, labels)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # per class F1: class 0 p=1/2 r=1/2, class 1 p=2/3 r=1, class 2 p=1 r=1/2
    f1 = [0.5, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert metrics["f1"] == pytest.approx(np.mean(f1))
    assert metrics["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.8, 0.7, 0.8, 0.3])))
    assert 0.5 < metrics["auc"] <= 1.0


def test_binary_auc_ranks_the_positive_class():
    labels = np.array([0, 0, 1, 1])
    perfect = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    assert classification_metrics(perfect, labels)["auc"] == 1.0
    assert classification_metrics(perfect[::-1].copy(), labels)["auc"] == 0.0


def test_auc_is_nan_with_a_single_class_present():
    assert math.isnan(classification_metrics(np.zeros((3, 2)), np.array([1, 1, 1]))["auc"])


def test_every_task_metric_has_a_direction():
    assert set(TASK_METRICS["classify"]) == {"val_loss", "val_accuracy", "val_f1", "val_auc"}
    assert all(mode in ("min", "max") for task in TASK_METRICS.values() for mode in task.values())
