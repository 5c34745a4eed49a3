"""HyperOpt TPE over a tree-structured space, told about early-stopped trials by epochs reached.

A dimension with `when: {model.head: attention}` lives in the `attention` branch of `model.head`'s choice,
so TPE models it only from trials where it was active, and a trial's config carries only active
dimensions. Ray's `HyperOptSearch` does the proposing, bookkeeping and checkpointing; this subclass
builds the tree, flattens the proposals back to dotted paths, seeds the trial history with warm-start
points, replaces the loss of a finished trial by `fidelity.ranked_loss` and bounds the history TPE fits
(`BoundedHistory`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any

import hyperopt as hpo
from hyperopt import hp
from hyperopt.fmin import generate_trial
from ray.tune.search.hyperopt import HyperOptSearch

from lstm_ray.fidelity import Fidelity, ranked_loss
from lstm_ray.search_space import Distribution


class TreeHyperOptSearch(HyperOptSearch):
    def __init__(
        self,
        space: dict[str, Distribution],
        *,
        metric: str,
        mode: str,
        max_epochs: int,
        n_initial_points: int,
        seed: int | None,
        points: Sequence[dict[str, Any]] = (),
        known: Sequence[Any] = (),  # searchers.KnownPoint
        algo: Callable | None = None,  # default TPE; hyperopt.rand.suggest for random search
        max_history: int | None = None,  # scored trials the model is fitted on (None: all); see BoundedHistory
    ):
        self.tree, self.max_epochs = space, max_epochs
        self.fidelity: dict[str, Fidelity] = {}
        super().__init__(
            space=hyperopt_space(space),
            metric=metric,
            mode=mode,
            n_initial_points=n_initial_points,
            random_state_seed=seed,
        )
        if algo is not None:
            self.algo = algo
        if max_history is not None:
            self.algo = BoundedHistory(self.algo, max_history)
        if points or known:
            # Ray proposes its points from the end of this list backwards, hence reversed.
            docs = [generate_trial(tid, hyperopt_values(space, p)) for tid, p in enumerate(reversed(points))]
            for tid, point in enumerate(known, start=len(docs)):
                doc = generate_trial(tid, hyperopt_values(space, point.params))
                doc["state"] = hpo.JOB_STATE_DONE
                doc["result"] = {"status": "ok", "loss": ranked_loss(_fidelity(point), max_epochs, mode)}
                docs.append(doc)
            self._hpopt_trials = hpo.Trials()
            self._hpopt_trials.insert_trial_docs(docs)
            self._hpopt_trials.refresh()
            self._points_to_evaluate = len(points)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        return None if config is None else flatten_branches(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        fidelity = self.fidelity.setdefault(trial_id, Fidelity())
        fidelity.update(result, self._metric, self._mode)
        super().on_trial_result(trial_id, result)
        doc = self._get_hyperopt_trial(trial_id)
        if doc is not None and not math.isnan(fidelity.best):
            # HyperOpt's TPE counts a running trial with no loss as infinitely bad: a trial ASHA keeps
            # promoting would push proposals away from the best region for as long as it runs.
            doc["result"] = {"status": "ok", "loss": ranked_loss(fidelity, self.max_epochs, self._mode)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        fidelity = self.fidelity.pop(trial_id, Fidelity())
        if result and not error:
            fidelity.update(result, self._metric, self._mode)
            # metric_op is +1 or -1, its own inverse: HyperOpt gets exactly ranked_loss.
            result = {self._metric: self.metric_op * ranked_loss(fidelity, self.max_epochs, self._mode)}
        super().on_trial_complete(trial_id, result, error)


class BoundedHistory:
    """A HyperOpt suggest function (`algo`) that sees at most `limit` scored trials (finished, or running with
    an epoch reported): the best quarter of them and the most recent rest, plus the trials with no score yet.

    TPE walks the whole history on every proposal (about 30 ms at 3,000 trials, growing linearly), so a sweep of
    many short trials ends up waiting on its searcher. Its model already discounts old trials (HyperOpt's
    linear forgetting) and its "good" density comes from the best few, which are always kept; up to `limit`
    scored trials nothing changes.
    """

    def __init__(self, algo: Callable, limit: int):
        self.algo, self.limit = algo, limit

    def __call__(self, new_ids: list[int], domain: Any, trials: hpo.Trials, seed: int) -> list[dict]:
        scored = [doc for doc in trials.trials if doc["result"].get("status") == hpo.STATUS_OK]
        if len(scored) <= self.limit:
            return self.algo(new_ids, domain, trials, seed)
        best = heapq.nsmallest(self.limit // 4, scored, key=lambda doc: doc["result"]["loss"])
        kept = {id(doc) for doc in best + scored[len(scored) - (self.limit - len(best)) :]}
        view = hpo.Trials()
        # Without a copy (insert_trial_docs would copy every document): TPE only reads them.
        view._insert_trial_docs(
            [doc for doc in trials.trials if id(doc) in kept or doc["result"].get("status") != hpo.STATUS_OK]
        )
        view.refresh()
        return self.algo(new_ids, domain, view, seed)


def hyperopt_space(space: dict[str, Distribution]) -> dict[str, Any]:
    """HyperOpt's nested space: each conditional dimension sits in the branches of its parent's choice."""
    tree: dict[str, Any] = {}
    for path, dist in space.items():
        if dist.when:
            continue
        children = _children(space, path)
        if not children:
            tree[path] = _node(path, dist)
            continue
        branches = []
        for i, option in enumerate(dist.args):
            branch = {path: option}
            for child in children:
                if option in space[child].when[0][1]:
                    branch[child] = _node(_branch_label(child, path, i), space[child])
            branches.append(branch)
        tree[path] = hp.choice(path, branches)
    return tree


def hyperopt_values(space: dict[str, Distribution], params: dict[str, Any]) -> dict[str, Any]:
    """A point's values as HyperOpt records them: label -> value (choice: index), inactive labels absent."""
    values: dict[str, Any] = {}
    for path, dist in space.items():
        if dist.when:
            continue
        values[path] = _recorded(dist, params[path])
        for child in _children(space, path):
            if child in params:
                index = dist.args.index(params[path])
                values[_branch_label(child, path, index)] = _recorded(space[child], params[child])
    return values


def flatten_branches(config: dict[str, Any]) -> dict[str, Any]:
    """{model.head: {model.head: attention, model.heads: 2}} -> {model.head: attention, model.heads: 2}."""
    flat: dict[str, Any] = {}
    for path, value in config.items():
        flat.update(value if isinstance(value, dict) else {path: value})
    return flat


def _children(space: dict[str, Distribution], parent: str) -> list[str]:
    return [path for path, dist in space.items() if dist.when and dist.when[0][0] == parent]


def _branch_label(child: str, parent: str, index: int) -> str:
    return f"{child}|{parent}#{index}"  # HyperOpt labels must be unique: one per branch


def _node(label: str, dist: Distribution) -> Any:
    args = dist.args
    if dist.kind == "choice":
        return hp.choice(label, list(args))
    if dist.kind == "uniform":
        return hp.uniform(label, *args)
    if dist.kind == "loguniform":
        return hp.loguniform(label, math.log(args[0]), math.log(args[1]))
    if dist.kind == "quniform":
        return hp.quniform(label, *args)
    if dist.kind == "randint":
        return hp.uniformint(label, args[0], args[1] - 1)
    raise ValueError(f"HyperOpt cannot search {dist.kind!r} dimensions; use choice instead of grid")


def _recorded(dist: Distribution, value: Any) -> Any:
    return dist.args.index(value) if dist.kind == "choice" else value


def _fidelity(point: Any) -> Fidelity:
    return Fidelity(best=point.best, epochs=point.epochs)
