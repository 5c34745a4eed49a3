"""The winner of a multi-objective sweep: the best search.metric, or the Pareto front member search.pick chooses;
and the closing lines that show the front and the choice.

    choice = front_winner(cfg, results, front, winner)   # front: finish.pareto_trials(cfg, results)
    choice.winner, choice.line, choice.missed
    for line in front_lines(summary): print(line)        # `lstm-ray tune`'s front and pick lines

A rule no member meets leaves the default winner (`missed`): the sweep then registers nothing under
tracking.register_as, since that model is not what the rule asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune

from lstm_ray.config import ExperimentConfig
from lstm_ray.config.pick import parse_pick
from lstm_ray.search.front_pick import pick_member
from lstm_ray.sweep.winner import Winner, pick_winner


@dataclass
class FrontChoice:
    winner: Winner  # the trial whose best checkpoint becomes the sweep's model
    line: str = ""  # "Picked trial ... by search.pick ..." or a "warning: ..." line; "" without search.pick
    missed: bool = False  # no front member met search.pick: the default winner stays, nothing is registered


def front_winner(
    cfg: ExperimentConfig, results: tune.ResultGrid, front: list[dict[str, Any]], default: Winner
) -> FrontChoice:
    """The sweep's winner under search.pick: the front member the rule chooses, at its best epoch of
    search.metric; `default` (the best search.metric) when no member meets the rule or without search.pick."""
    if cfg.search.pick is None or not front:
        return FrontChoice(default)
    choice = pick_member(front, parse_pick(cfg.search.pick))
    if choice.chosen is None:
        winner_id = _trial_id(default.result)
        line = choice.missed_line(cfg.search.metric, winner_id, cfg.tracking.register_as)
        return FrontChoice(default, line, missed=True)
    chosen = [r for r in results if _trial_id(r) == choice.chosen["trial_id"]]
    return FrontChoice(pick_winner(chosen, cfg.search.metric, cfg.search.mode), choice.picked_line())


def front_lines(summary: Any) -> list[str]:
    """A finished sweep's Pareto front, one line per trial (its objectives, then its values), and which member
    search.pick chose, or a `warning:` line (the CLI prints it on stderr) when no member met the rule."""
    lines = []
    if summary.pareto:
        count = f"{len(summary.pareto)} trial{'s' * (len(summary.pareto) != 1)}"
        lines.append(f"Pareto front: {count} no other trial beats on every objective (pareto.json):")
        for row in summary.pareto:
            scores = ", ".join(f"{k} = {v:.5g}" for k, v in row.items() if isinstance(v, float))
            values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
            lines.append(f"  {row['trial_id']}: {scores} (epoch {row['epoch']})  {values}")
    return lines + ([summary.pick_line] if summary.pick_line else [])


def _trial_id(result: tune.Result) -> str:
    """As `finish.pareto_trials` names a front row's trial."""
    return str(result.metrics.get("trial_id") or result.path.rsplit("/", 1)[-1])
