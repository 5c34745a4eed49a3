"""Pareto fronts of trials scored on several objectives (search.objectives), by non-dominated sorting.

    objectives = [("val_rmse", "min"), ("model_parameters", "min")]
    front = pareto_front([trial.metrics for trial in trials], objectives)  # indices of the non-dominated trials

Ray-free and MLflow-free: `mo_asha.py` ranks a rung with `priority_order`, the sweep's finish logs `pareto_front`.
A missing or NaN value counts as the worst possible, so a trial that never reported an objective is on the front
only if no trial beat it anywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Objective = tuple[str, str]  # (metric, "min" | "max")
Point = tuple[float, ...]  # one trial's objectives, each turned so that lower is better


def oriented(values: Mapping[str, float], objectives: Sequence[Objective]) -> Point:
    """`values` as a point where lower is better in every objective; missing or NaN values become +inf."""
    point = []
    for metric, mode in objectives:
        value = values.get(metric)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            point.append(math.inf)
        else:
            point.append(float(value) if mode == "min" else -float(value))
    return tuple(point)


def dominates(a: Point, b: Point) -> bool:
    """Whether `a` is no worse than `b` in every objective and better in at least one (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """The points' indices in fronts: front 0 is non-dominated, front k is non-dominated once fronts < k are
    removed. Every index appears in exactly one front; equal points share a front. O(n^2) comparisons (Deb's
    fast non-dominated sort), fine for the hundreds of trials a rung or a sweep holds."""
    n = len(points)
    beaten_by = [0] * n  # how many points dominate i
    beats: list[list[int]] = [[] for _ in range(n)]  # the points i dominates
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                beats[i].append(j)
                beaten_by[j] += 1
            elif dominates(points[j], points[i]):
                beats[j].append(i)
                beaten_by[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if beaten_by[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point within its own front: larger is lonelier (ends are infinite)."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][k])
        low, high = points[order[0]][k], points[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span == 0:
            continue
        for before, i, after in zip(order, order[1:], order[2:], strict=False):
            distance[i] += (points[after][k] - points[before][k]) / span
    return distance


def priority_order(points: Sequence[Point]) -> list[int]:
    """Indices best first: by front, then within a front by crowding distance (lonelier first), then by index."""
    order: list[int] = []
    for front in non_dominated_sort(points):
        crowding = dict(zip(front, crowding_distance([points[i] for i in front]), strict=True))
        order += sorted(front, key=lambda i: (-crowding[i], i))
    return order


def pareto_front(rows: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the rows no other row dominates on `objectives`, in input order."""
    points = [oriented(row, objectives) for row in rows]
    return sorted(non_dominated_sort(points)[0]) if points else []
