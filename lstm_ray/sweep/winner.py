"""The sweep's winner: the trial with the best value of the metric over all its epochs, ties broken by val_loss.

    winner = pick_winner(results, "val_accuracy", "max")   # results: a Ray Tune ResultGrid
    winner.result.config, winner.checkpoint, winner.note    # note: "" or why a tie went the way it did

Accuracy saturates (several trials reach 1.0 on a small validation split), and Tune's own `get_best_result`
then picks a tied trial by its order, not its merit. Here the tie goes to the trial whose best epoch has the
lowest val_loss, which both tasks report, and the checkpoint is that epoch's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from ray import tune

__all__ = ["Winner", "pick_winner"]

TIE_TOLERANCE = 1e-12  # relative: values this close count as equal (the same score read back from CSV)
TIE_BREAKER = "val_loss"


@dataclass
class Winner:
    result: tune.Result  # the winning trial
    checkpoint: tune.Checkpoint | None  # its best checkpoint (ties between epochs also by val_loss)
    tied: int  # how many trials tied on the metric (1: no tie)
    note: str  # "" or e.g. "3 trials tied at val_accuracy 1; the one with the lowest val_loss won"


@dataclass(frozen=True)
class _BestEpoch:
    value: float  # the trial's best finite value of the metric
    val_loss: float  # val_loss on the epoch that reached it (inf when not reported)


def pick_winner(results: Iterable[tune.Result], metric: str, mode: str) -> Winner:
    """The trial whose best finite `metric` over all its epochs is best for `mode` ("min" or "max"); among
    trials within TIE_TOLERANCE of that best, the one whose best epoch has the lowest val_loss (the first in
    `results` order when those are equal too). NaN and infinite values are skipped, and trials that never
    reported the metric (failed before their first epoch) are ignored. Raises ValueError on an unknown mode
    or when no trial reported a finite `metric`."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    scored = [(result, best) for result in results if (best := _best_epoch(result, metric, mode)) is not None]
    if not scored:
        raise ValueError(f"no trial reported a finite {metric}")
    top = (min if mode == "min" else max)(best.value for _, best in scored)
    tied = [(result, best) for result, best in scored if _same(best.value, top)]
    result, best = min(tied, key=lambda pair: pair[1].val_loss)
    note = f"{len(tied)} trials tied at {metric} {top:g}; the one with the lowest {TIE_BREAKER} won"
    return Winner(result, _best_checkpoint(result, metric, mode, best.value), len(tied), note if len(tied) > 1 else "")


def _best_epoch(result: tune.Result, metric: str, mode: str) -> _BestEpoch | None:
    """The trial's best finite `metric` over its reported epochs and the lowest val_loss among the epochs that
    reached it; None when it reported no finite `metric`."""
    frame = result.metrics_dataframe
    if frame is None or metric not in frame.columns:
        return None
    values = _finite(frame[metric])
    reported = values.notna()
    if not reported.any():
        return None
    best = float(values[reported].min() if mode == "min" else values[reported].max())
    at_best = values[reported].map(lambda value: _same(value, best))
    losses = _finite(frame[TIE_BREAKER]) if TIE_BREAKER in frame.columns else pd.Series(math.inf, frame.index)
    return _BestEpoch(best, float(losses[reported][at_best].fillna(math.inf).min()))


def _best_checkpoint(result: tune.Result, metric: str, mode: str, best: float) -> tune.Checkpoint | None:
    """Of the trial's kept checkpoints that reached its best `metric`, the one with the lowest val_loss; when
    none of them is kept (storage.keep_checkpoints dropped it), the best kept by `metric` alone, as Tune's
    `get_best_checkpoint` but skipping NaN and infinite values; None when no kept checkpoint reports `metric`."""
    kept = [
        (checkpoint, value, _loss(metrics))
        for checkpoint, metrics in result.best_checkpoints
        if (value := _number(metrics.get(metric))) is not None
    ]
    at_best = [entry for entry in kept if _same(entry[1], best)]
    if at_best:
        return min(at_best, key=lambda entry: entry[2])[0]
    return (min if mode == "min" else max)(kept, key=lambda entry: entry[1])[0] if kept else None


def _finite(column: pd.Series) -> pd.Series:
    """The column as floats, with NaN where a value is missing, not a number or infinite."""
    values = pd.to_numeric(column, errors="coerce").astype(float)
    return values.where(values.map(math.isfinite))


def _number(value: object) -> float | None:
    """`value` as a finite float, or None (missing, text, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def _loss(metrics: dict) -> float:
    """The checkpoint's val_loss, inf when it has none, so a checkpoint without one never wins a tie."""
    loss = _number(metrics.get(TIE_BREAKER))
    return math.inf if loss is None else loss


def _same(value: float, best: float) -> bool:
    return math.isclose(value, best, rel_tol=TIE_TOLERANCE, abs_tol=0.0)
