"""What a trial measures: forecasting errors on the original scale, classification scores from logits.

    forecast_metrics(predicted, actual)  # {"rmse", "mae", "mape", "smape"}, inputs already inverse-transformed
    classification_metrics(logits, labels)  # {"loss", "accuracy", "f1", "auc"}

`TASK_METRICS` (defined with the config schema, `lstm_ray.config.schema`) names every validation metric a task
reports and whether it is minimised or maximised. This module needs numpy alone; scikit-learn is imported lazily.
"""

from __future__ import annotations

import numpy as np

from lstm_ray.config.schema import TASK_METRICS

__all__ = ["TASK_METRICS", "classification_metrics", "forecast_metrics"]


def forecast_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MAPE and sMAPE (both in percent) of predictions against actuals, both on the original scale.

    MAPE skips actuals equal to zero (it is undefined there) and is NaN when every actual is zero; sMAPE
    counts a step where both prediction and actual are zero as no error.
    """
    error = predicted.astype(np.float64) - actual.astype(np.float64)
    size = np.abs(actual.astype(np.float64))
    nonzero = size > 0
    mape = float(np.mean(np.abs(error[nonzero]) / size[nonzero]) * 100) if nonzero.any() else float("nan")
    denominator = size + np.abs(predicted.astype(np.float64))
    ratio = np.divide(2 * np.abs(error), denominator, out=np.zeros_like(error), where=denominator > 0)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": mape,
        "smape": float(np.mean(ratio) * 100),
    }


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cross-entropy loss, accuracy, macro-F1 and AUC from logits (n, classes) and class ids (n,).

    Macro-F1 averages over the classes that occur in `labels` or in the predictions. AUC is the ROC AUC of
    class 1 for two classes and the macro one-vs-rest AUC for more, over the classes present in `labels`;
    it is NaN when fewer than two are present.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    logits = logits.astype(np.float64)
    n_classes = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    predicted = logits.argmax(axis=1)
    present = np.unique(labels)
    if len(present) < 2:
        auc = float("nan")
    elif n_classes == 2:
        auc = float(roc_auc_score(labels, probs[:, 1]))
    else:
        onehot = labels[:, None] == present[None, :]
        auc = float(roc_auc_score(onehot, probs[:, present], average="macro"))
    return {
        "loss": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
        "accuracy": float(np.mean(predicted == labels)),
        "f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "auc": auc,
    }
