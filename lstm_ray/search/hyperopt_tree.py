"""HyperOpt TPE over a tree-structured space, told about early-stopped trials by epochs reached.

A dimension with `when: {model.head: attention}` lives in the `attention` branch of `model.head`'s choice,
so TPE models it only from trials where it was active, and a trial's config carries only active
dimensions. Ray's `HyperOptSearch` does the proposing, bookkeeping and checkpointing; this subclass
builds the tree, flattens the proposals back to dotted paths, seeds the trial history with warm-start
points, replaces the loss of a finished trial by `fidelity.ranked_loss` and bounds the history TPE fits
(`BoundedHistory`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import hyperopt as hpo
import numpy as np
from hyperopt import hp
from hyperopt.fmin import generate_trial
from ray.tune.search.hyperopt import HyperOptSearch

from lstm_ray.config.space import Distribution
from lstm_ray.search.fidelity import Fidelity, SearchSetup, TrialFidelities, ranked_loss


class TreeHyperOptSearch(HyperOptSearch):
    def __init__(
        self,
        setup: SearchSetup,
        *,
        n_initial_points: int,
        seed: int | None,
        algo: Callable | None = None,  # default TPE; hyperopt.rand.suggest for random search
        max_history: int | None = None,  # scored trials the model is fitted on (None: all); see BoundedHistory
    ):
        space, mode = setup.space, setup.mode
        self.tree, self.max_epochs = space, setup.max_epochs
        self.fidelities = TrialFidelities(setup.metric, mode)
        super().__init__(
            space=hyperopt_space(space),
            metric=setup.metric,
            mode=mode,
            n_initial_points=n_initial_points,
            random_state_seed=seed,
        )
        if algo is not None:
            self.algo = algo
        if max_history is not None:
            self.algo = BoundedHistory(self.algo, max_history)
        if setup.points or setup.known:
            # Ray proposes its points from the end of this list backwards, hence reversed.
            points = setup.points
            docs = [generate_trial(tid, hyperopt_values(space, p)) for tid, p in enumerate(reversed(points))]
            for tid, point in enumerate(setup.known, start=len(docs)):
                doc = generate_trial(tid, hyperopt_values(space, point.params))
                doc["state"] = hpo.JOB_STATE_DONE
                doc["result"] = {"status": "ok", "loss": ranked_loss(_fidelity(point), self.max_epochs, mode)}
                docs.append(doc)
            self._hpopt_trials = hpo.Trials()
            self._hpopt_trials.insert_trial_docs(docs)
            self._hpopt_trials.refresh()
            self._points_to_evaluate = len(points)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        return None if config is None else flatten_branches(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        fidelity = self.fidelities.heard(trial_id, result)
        super().on_trial_result(trial_id, result)
        doc = self._get_hyperopt_trial(trial_id)
        if doc is not None and not math.isnan(fidelity.best):
            # HyperOpt's TPE counts a running trial with no loss as infinitely bad: a trial ASHA keeps
            # promoting would push proposals away from the best region for as long as it runs.
            doc["result"] = {"status": "ok", "loss": ranked_loss(fidelity, self.max_epochs, self._mode)}

    def _get_hyperopt_trial(self, trial_id: str) -> dict | None:
        """The HyperOpt document of a live trial, from an index by tid (Ray's scans the whole history, on every
        result of every trial)."""
        live = self._live_trial_mapping.get(trial_id)
        if live is None:
            return None
        docs = self._hpopt_trials._dynamic_trials  # append-only; a new list when the history is replaced
        index = self.__dict__.get("_docs_by_tid")
        if index is None or index[0] is not docs:
            index = self._docs_by_tid = (docs, {})
        by_tid = index[1]
        if live[0] not in by_tid:
            by_tid.update((doc["tid"], doc) for doc in docs[len(by_tid) :])
        return by_tid[live[0]]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        fidelity = self.fidelities.ended(trial_id, result, error)
        if fidelity is not None:
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
        docs = trials.trials
        # Two light passes in Python, the rest in numpy: this runs before every proposal, over the whole history.
        results = [doc["result"] for doc in docs]
        ok = np.array([result.get("status") == hpo.STATUS_OK for result in results], dtype=bool)
        scored = np.flatnonzero(ok)
        if len(scored) <= self.limit:
            return self.algo(new_ids, domain, trials, seed)
        losses = np.array([results[i]["loss"] for i in scored.tolist()], dtype=float)
        best = scored[np.argsort(losses, kind="stable")[: self.limit // 4]]  # ties: the earlier trial
        recent = scored[len(scored) - (self.limit - len(best)) :]
        kept = np.union1d(np.union1d(best, recent), np.flatnonzero(~ok))  # sorted: the history's order
        view = hpo.Trials()
        # Without a copy (insert_trial_docs would copy every document): TPE only reads them.
        view._insert_trial_docs([docs[i] for i in kept.tolist()])
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
