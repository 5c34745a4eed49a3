"""How a model-based searcher hears about a trial that a scheduler (ASHA, HyperBand, median) stopped early.

Ray's default tells the searcher a stopped trial's *last* value as if it were final: a trial cut at epoch 2
is compared with one trained for 20 epochs, and a trial whose last epoch was a bad one looks bad even when
its best epoch (the checkpoint the sweep would pick) was the best of the sweep. lstm-ray reports instead:

- the trial's **best value so far** (what the sweep's winner pick and its checkpoint use), and
- its **fidelity**: the epochs it trained. A trial that ran to `train.max_epochs`, or ended by its own early
  stopping (`train.patience`), has full fidelity.

Model-based searchers then rank trials first by fidelity (more epochs first), then by that value: the rule
Optuna's TPE applies to pruned trials. HyperOpt's TPE only uses the order of the losses it is given (it
splits them at a quantile), so `ranked_loss` encodes this order in one number; Optuna is told the trial was
pruned, with its best-so-far value at each epoch as intermediate values.

HyperOpt also hears about *running* trials after every epoch, with their fidelity so far. Left alone, its TPE
counts a running trial as infinitely bad, and under ASHA the trials that keep being promoted are exactly the
long-running, promising ones. `scripts/bench/asha_reporting.py` compares all this with Ray's default on the
same budget (same trials, same ASHA): the sweep's pick has lower regret and test error (see its JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lstm_ray.config.space import Distribution


@dataclass
class Fidelity:
    """What a searcher learns from one trial: its best value so far and the epochs it trained."""

    best: float = math.nan  # the best finite value of the metric seen so far (NaN: none yet)
    epochs: int = 0  # epochs trained
    finished: bool = False  # it ended by itself (early stopping), not by a scheduler

    def update(self, result: dict[str, Any], metric: str, mode: str) -> None:
        """Take one reported epoch into account; non-finite values never count as best."""
        value = result.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if math.isnan(self.best) or (value < self.best if mode == "min" else value > self.best):
                self.best = float(value)
        self.epochs = max(self.epochs, int(result.get("epoch", result.get("training_iteration", 0))))
        self.finished = self.finished or bool(result.get("early_stopped", False))

    def reached(self, max_epochs: int) -> int:
        """Epochs that count for ranking: a trial that stopped itself is as good as one that ran them all."""
        return max_epochs if self.finished else min(self.epochs, max_epochs)


@dataclass(frozen=True)
class SearchSetup:
    """What a model-based searcher is built with: the space, the objective, the full fidelity (`train.max_epochs`),
    the points to try first and the earlier trials (`searchers.KnownPoint`) to learn from."""

    space: dict[str, Distribution]
    metric: str
    mode: str
    max_epochs: int
    points: Sequence[dict[str, Any]] = ()
    known: Sequence[Any] = ()


class TrialFidelities:
    """The Fidelity of every trial a model-based searcher has heard of, by Tune trial id: the bookkeeping the
    HyperOpt and Optuna searchers share. Plain attributes, since Ray pickles searchers to save a sweep."""

    def __init__(self, metric: str, mode: str):
        self.metric, self.mode = metric, mode
        self.trials: dict[str, Fidelity] = {}

    def heard(self, trial_id: str, result: dict[str, Any]) -> Fidelity:
        """Take one reported epoch of a running trial into account; its fidelity so far."""
        fidelity = self.trials.setdefault(trial_id, Fidelity())
        fidelity.update(result, self.metric, self.mode)
        return fidelity

    def ended(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> Fidelity | None:
        """Forget an ended trial; its final fidelity, or None when it failed or reported nothing."""
        fidelity = self.trials.pop(trial_id, Fidelity())
        if not result or error:
            return None
        fidelity.update(result, self.metric, self.mode)
        return fidelity


def ranked_loss(fidelity: Fidelity, max_epochs: int, mode: str) -> float:
    """A loss (lower is better) whose order is: more epochs first, then the better best-so-far value.

    The value is squashed into (0, 1) by a monotone map, so each missing epoch costs more than any value
    difference; a trial with no finite value ranks last among those of its fidelity.
    """
    sign = 1.0 if mode == "min" else -1.0
    value = math.inf if math.isnan(fidelity.best) else sign * fidelity.best
    return (max_epochs - fidelity.reached(max_epochs)) + 0.5 + math.atan(value) / math.pi


def asha_rungs(scheduler: str, grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """ASHA's rung epochs below max_t, as Ray's first bracket places them; none for other schedulers."""
    if scheduler != "asha":
        return []
    grace = min(grace_period, max_t)
    count = int(math.log(max_t / grace) / math.log(reduction_factor) + 1)
    return [r for r in (grace * reduction_factor**k for k in range(count)) if r < max_t]
