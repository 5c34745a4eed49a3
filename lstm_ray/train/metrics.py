"""What a trial measures: forecasting errors on the original scale, classification scores from logits.

    forecast_metrics(predicted, actual, mask, naive_mae)  # rmse, mae, mase, mape, smape, in the data's units
    classification_metrics(logits, labels)  # {"loss", "accuracy", "f1", "auc"}
    baseline_scores(data, setting)  # {"last_value.val_rmse": 0.94, ...}: the naive baselines, scored the same way
    check_metric("val_mape", data)  # DataError when the data cannot give the metric a value (zeros, one class)

`TASK_METRICS` (defined with the config schema, `lstm_ray.config.schema`) names every validation metric a task
reports and whether it is minimised or maximised. This module needs numpy alone; scikit-learn is imported lazily.
"""

from __future__ import annotations

import numpy as np

from lstm_ray.config.schema import TASK_METRICS
from lstm_ray.data.baselines import baseline_forecasts, baseline_probabilities
from lstm_ray.data.prepared import PreparedData
from lstm_ray.data.splits import VAL
from lstm_ray.data.windows import WindowSetting
from lstm_ray.errors import DataError

__all__ = ["TASK_METRICS", "baseline_scores", "check_metric", "classification_metrics", "forecast_metrics"]


def forecast_metrics(
    predicted: np.ndarray,
    actual: np.ndarray,
    mask: np.ndarray | None = None,
    naive_mae: np.ndarray | None = None,
) -> dict[str, float]:
    """RMSE, MAE, MAPE and sMAPE (both in percent) of predictions against actuals (..., targets), both in the
    data's units; with `naive_mae` (per target) also MASE, each target's MAE over its naive MAE, averaged.

    `mask` (same shape) scores only the actuals that were observed (filled gaps are not scored). MAPE skips
    actuals equal to zero (it is undefined there) and is NaN when every actual is zero; sMAPE counts a step
    where both prediction and actual are zero as no error.
    """
    scores = {}
    if naive_mae is not None:
        keep = np.ones(actual.shape, dtype=bool) if mask is None else mask
        error = np.abs(predicted.astype(np.float64) - actual)
        per_target = [error[..., j][keep[..., j]].mean() / naive_mae[j] for j in range(actual.shape[-1])]
        scores["mase"] = float(np.mean(per_target))
    if mask is not None:
        predicted, actual = predicted[mask], actual[mask]
    return _errors(predicted, actual) | scores


def _errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
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


def check_metric(metric: str, data: PreparedData) -> None:
    """Raise DataError naming search.metric when `data` cannot give `metric` a finite value: MAPE on a target with
    zeros (their scaled round trip comes back as tiny values, so MAPE explodes and the search optimises that),
    AUC on a validation split that holds one class."""
    if metric == "val_mape" and data.history is not None:
        zeros = (data.history == 0) & (data.observed if data.observed is not None else True)
        if zeros.any():
            column = data.target_columns[int(np.argwhere(zeros)[0][1])]
            raise DataError(
                "search.metric",
                f"val_mape divides by the target, and {column!r} has {int(zeros.sum())} zero values; "
                "use val_smape or val_mase",
            )
    if metric == "val_auc" and data.labels is not None:
        for where, val in _validation_splits(data):
            classes = np.unique(data.labels[val])
            if len(classes) < 2:
                names = [data.class_names[int(c)] for c in classes]
                raise DataError(
                    "search.metric",
                    f"val_auc needs two classes in every validation split, but {where} holds only {names}; "
                    "use val_loss or val_accuracy, or set data.val_fraction (or data.split_column) so it holds both",
                )


def _validation_splits(data: PreparedData) -> list[tuple[str, np.ndarray]]:
    """(name, sequence mask) of each validation split the trials score: every cv fold's, else the holdout's."""
    if data.fold_codes:
        return [(f"fold {k}'s validation part", codes == VAL) for k, codes in enumerate(data.fold_codes)]
    return [("the validation split", data.codes == VAL)]


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


def baseline_scores(data: PreparedData, setting: WindowSetting, splits: tuple[str, ...] = ("val", "test")):
    """Every baseline's metrics on `splits` of `setting`'s windows, as the trials are scored there:
    {"last_value.val_rmse": ..., "seasonal.test_mase": ..., "majority.val_accuracy": ...}."""
    scores: dict[str, float] = {}
    for split in splits:
        windows = data.windows(setting)[split]
        if data.task == "classify":
            for name, probabilities in baseline_probabilities(data, split).items():
                found = classification_metrics(np.log(np.clip(probabilities, 1e-12, None)), windows.y)
                kept = ("accuracy", "f1") if name == "majority" else found  # a certain guess has no loss or AUC
                scores |= {f"{name}.{split}_{k}": found[k] for k in kept}
            continue
        actual = data.inverse_targets(windows.y)
        for name, predicted in baseline_forecasts(data, setting, split).items():
            found = forecast_metrics(predicted, actual, windows.mask, data.naive_mae)
            scores |= {f"{name}.{split}_{k}": v for k, v in found.items()}
    return scores
