"""Optuna's multi-objective search through Ray's OptunaSearch (metric=[...], mode=[...]), for search.objectives.

    searcher = MultiObjectiveOptunaSearch(setup, objectives, sampler=optuna.samplers.TPESampler(...))  # MOTPE

Optuna takes no intermediate values on several objectives, so a trial is told once, when it ends: a trial that
trained `train.max_epochs` (or stopped itself, `train.patience`) as complete, with its best value of
search.metric so far (the checkpoint the sweep keeps) and its last value of every other objective; a trial that
MO-ASHA stopped at a rung as pruned, which Optuna's multi-objective samplers (MOTPE, NSGA-II) leave out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from lstm_ray.search.fidelity import SearchSetup, TrialFidelities
from lstm_ray.search.optuna_space import STUDY, OptunaSpace


class MultiObjectiveOptunaSearch(OptunaSearch):
    def __init__(self, setup: SearchSetup, objectives: Sequence[tuple[str, str]], *, sampler: Any):
        self.max_epochs = setup.max_epochs
        self.primary = setup.metric  # search.metric: its best-so-far value is the trial's value
        self.fidelities = TrialFidelities(setup.metric, setup.mode)
        super().__init__(
            space=OptunaSpace(setup.space),
            metric=[metric for metric, _ in objectives],
            mode=[mode for _, mode in objectives],
            sampler=sampler,
            study_name=STUDY,
            points_to_evaluate=list(setup.points) or None,
        )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.fidelities.heard(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        fidelity = self.fidelities.ended(trial_id, result, error)
        if fidelity is not None and result is not None:
            values = [fidelity.best if metric == self.primary else result.get(metric) for metric in self.metric]
            full = fidelity.reached(self.max_epochs) >= self.max_epochs
            finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
            # Ray tells Optuna "pruned" when there is no value and no error.
            result = (
                {metric: value for metric, value in zip(self.metric, values, strict=True)} if full and finite else None
            )
        super().on_trial_complete(trial_id, result, error)
