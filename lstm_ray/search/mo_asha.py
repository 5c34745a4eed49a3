"""MO-ASHA: asynchronous successive halving whose rungs promote by non-dominated sorting (search.objectives).

    scheduler = MultiObjectiveASHA([("val_rmse", "min"), ("model_parameters", "min")], time_attr=..., max_t=...)

Ray's ASHA with the same rungs (grace_period * reduction_factor^k epochs), but at each rung a trial is compared
with the trials recorded there on all objectives at once, as Syne Tune's MOASHA does: it trains on if no
recorded trial dominates it (it is on the rung's Pareto front), or if it ranks in the best 1/reduction_factor
of the rung by front and then crowding distance (`pareto.priority_order`). So a small fast model is not stopped
because a large one has lower error, and a trial that another beats on every objective is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from lstm_ray.search.pareto import Objective, Point, dominates, oriented, priority_order


class MultiObjectiveASHA(AsyncHyperBandScheduler):
    """ASHA over several objectives; `objectives` are (metric, mode) pairs, the first one also Tune's metric.

    A result that lacks an objective counts as worst on it (see `pareto.oriented`).
    """

    def __init__(self, objectives: Sequence[Objective], **kwargs: Any):
        metric, mode = objectives[0]
        super().__init__(metric=metric, mode=mode, **kwargs)
        self.objectives = list(objectives)
        self._brackets = [_ParetoBracket(bracket) for bracket in self._brackets]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives were given when it was built; Tune's single metric must not replace them

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            bracket = self._trial_info[trial.trial_id]
            action = bracket.on_result(trial, result[self._time_attr], oriented(result, self.objectives))
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if self._time_attr in result:
            self._trial_info[trial.trial_id].on_result(
                trial, result[self._time_attr], oriented(result, self.objectives)
            )
        del self._trial_info[trial.trial_id]

    def debug_string(self) -> str:
        return f"Using MO-ASHA over {', '.join(m for m, _ in self.objectives)}: num_stopped={self._num_stopped}"


class _ParetoBracket(_Bracket):
    """One ASHA bracket whose rungs record points (lower is better everywhere) instead of rewards."""

    def __init__(self, bracket: _Bracket):
        self.__dict__.update(bracket.__dict__)  # same rungs, rate and last-rung rule as Ray's

    def cutoff(self, recorded: dict) -> None:
        return None  # no single cutoff on several objectives (Ray's debug_str asks)

    def on_result(self, trial: Any, cur_iter: int, cur_rew: Any) -> str:
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self._rungs:
            if cur_iter >= milestone and trial.trial_id in recorded and not self._stop_last_trials:
                break
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if recorded and not promoted(cur_rew, list(recorded.values()), self.rf):
                action = TrialScheduler.STOP
            recorded[trial.trial_id] = cur_rew
            break
        return action


def promoted(point: Point, others: Sequence[Point], reduction_factor: float) -> bool:
    """Whether a trial reaching a rung with `point` trains on, given the points recorded there before it."""
    if not any(dominates(other, point) for other in others):
        return True
    everyone = [*others, point]
    kept = math.ceil(len(everyone) / reduction_factor)
    return priority_order(everyone).index(len(others)) < kept
