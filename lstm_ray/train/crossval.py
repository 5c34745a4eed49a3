"""Cross-validated training: one `Trainer` per fold, stepped in lockstep, reported as the fold mean.

    folds = FoldTrainers([Trainer(model_k, data.folds(setting)[k], cfg.train, ...) for k in range(n)])
    run_epochs(folds, report)   # the same interface as a Trainer: run_epoch, done, state, load_state

Every epoch each fold trains and validates once; the reported `val_*` metrics are the mean over folds and
`val_*_std` their standard deviation, so ASHA and the searcher compare trials on the fold mean. The
checkpoint holds every fold's state, and, for rebuilding the winner, the last fold's weights as `model`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstm_ray.train.training import Trainer


class FoldTrainers:
    def __init__(self, trainers: list[Trainer]):
        if not trainers:
            raise ValueError("cross-validation needs at least one fold")
        self.trainers = trainers

    @property
    def epoch(self) -> int:
        return self.trainers[0].epoch

    @property
    def stopped(self) -> bool:
        return all(t.stopped for t in self.trainers)

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.trainers[0].cfg.max_epochs

    def run_epoch(self) -> dict[str, float]:
        """Every fold's epoch; returns each metric's fold mean, and `<metric>_std` for validation metrics."""
        per_fold = [t.run_epoch() for t in self.trainers]
        metrics: dict[str, float] = {}
        for key in per_fold[0]:
            values = np.array([m[key] for m in per_fold], dtype=np.float64)
            metrics[key] = float(values.mean())
            if key.startswith("val_"):
                metrics[f"{key}_std"] = float(values.std())
        metrics["early_stopped"] = float(self.stopped)
        return metrics

    def state(self) -> dict[str, Any]:
        last = self.trainers[-1].state()
        return {
            "model": last["model"],
            "model_args": last["model_args"],
            "epoch": self.epoch,
            "folds": [t.state() for t in self.trainers],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for trainer, fold_state in zip(self.trainers, state["folds"], strict=True):
            trainer.load_state(fold_state)
