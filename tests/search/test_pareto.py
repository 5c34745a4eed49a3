"""Pareto fronts: the reported set is exactly the non-dominated set, checked against a brute-force definition on
generated points; fronts partition the points; min / max and missing values are oriented correctly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from lstm_ray.search.pareto import dominates, non_dominated_sort, oriented, pareto_front, priority_order

OBJECTIVES = [("val_rmse", "min"), ("model_parameters", "min"), ("val_accuracy", "max")]
# Few distinct values, so ties and duplicates (the hard cases for domination) are common.
values = st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0])
rows = st.lists(st.fixed_dictionaries({m: values for m, _ in OBJECTIVES}), max_size=30)
points = st.integers(1, 3).flatmap(lambda k: st.lists(st.tuples(*[values] * k), max_size=30))


def _brute_front(pts):
    return [i for i, p in enumerate(pts) if not any(dominates(q, p) for q in pts)]


@given(rows)
def test_the_reported_front_is_exactly_the_non_dominated_rows(table):
    pts = [oriented(row, OBJECTIVES) for row in table]
    assert pareto_front(table, OBJECTIVES) == _brute_front(pts)


@given(points)
def test_fronts_partition_the_points_and_each_front_is_dominated_only_by_earlier_ones(pts):
    fronts = non_dominated_sort(pts)
    assert sorted(i for front in fronts for i in front) == list(range(len(pts)))
    for k, front in enumerate(fronts):
        later = [j for f in fronts[k:] for j in f]
        for i in front:
            assert not any(dominates(pts[j], pts[i]) for j in later)  # nothing at its level or below beats it
            if k:
                assert any(dominates(pts[j], pts[i]) for j in fronts[k - 1])  # something just above does


@given(points)
def test_priority_order_puts_every_front_before_the_next(pts):
    order = priority_order(pts)
    assert sorted(order) == list(range(len(pts)))
    rank = {i: k for k, front in enumerate(non_dominated_sort(pts)) for i in front}
    assert [rank[i] for i in order] == sorted(rank[i] for i in order)


def test_max_objectives_are_flipped_and_missing_values_count_as_worst():
    assert oriented({"val_rmse": 1.0, "val_accuracy": 0.9}, OBJECTIVES) == (1.0, math.inf, -0.9)
    assert oriented({"val_rmse": math.nan}, OBJECTIVES[:1]) == (math.inf,)


def test_a_small_model_with_higher_error_is_on_the_front_beside_the_accurate_large_one():
    table = [
        {"val_rmse": 0.10, "model_parameters": 50_000},  # most accurate
        {"val_rmse": 0.30, "model_parameters": 500},  # smallest
        {"val_rmse": 0.35, "model_parameters": 5_000},  # dominated by the smallest
        {"val_rmse": 0.20, "model_parameters": 5_000},  # a middle point
    ]
    assert pareto_front(table, OBJECTIVES[:2]) == [0, 1, 3]
