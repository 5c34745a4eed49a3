"""What it takes to reproduce a sweep's winner outside lstm-ray: code, packages, data, seeds and config.

    manifest = build_manifest(cfg, data, winner_params, reevaluation)   # logged as manifest.json

`winner_config` is a complete experiment file: saved as YAML, `lstm-ray tune winner.yaml` retrains exactly
the winner (one trial, no search), and `data.fingerprint` tells whether the data is still the same.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

import numpy as np

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.redaction import redact_values
from lstm_ray.tracking.sweep import git_state

PACKAGES = ("lstm-ray", "torch", "ray", "mlflow", "numpy", "pyarrow", "hyperopt", "optuna", "scikit-learn")


def build_manifest(cfg: ExperimentConfig, data: Any, params: dict[str, Any], reevaluation: Any = None) -> dict:
    """The manifest of the winner with searched values `params` (a re-evaluation adds its seeds and scores); URIs
    in it have their credentials masked."""
    winner = apply_params(cfg, params).to_dict()
    winner["search"] |= {
        "algorithm": "random",
        "scheduler": "fifo",
        "num_samples": 1,
        "space": {},
        "points_to_evaluate": [],
        "warm_start": [],
        "reevaluate": None,
    }
    manifest = {
        "code": {"lstm_ray": metadata.version("lstm-ray"), **git_state()},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "data": {"source": cfg.data.source, "fingerprint": fingerprint(data)},
        "seeds": {"search.seed": cfg.search.seed, "train.seed": winner["train"]["seed"]},
        "winner_params": params,
        "winner_config": winner,
    }
    if reevaluation is not None:
        manifest["seeds"]["reevaluation"] = reevaluation.seeds
        manifest["reevaluation"] = [
            {"params": c.params, "sweep_value": c.sweep_value, "values": c.values, "mean": c.mean, "std": c.std}
            for c in reevaluation.candidates
        ]
    return redact_values(manifest)


def fingerprint(data: Any) -> str:
    """sha256 of the prepared data the trials trained on: values, columns, split codes and labels."""
    digest = hashlib.sha256()
    for part in ("values", "columns", "codes", "offsets", "labels"):
        value = getattr(data, part, None)
        if value is not None:
            digest.update(part.encode())
            raw = np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode()
            digest.update(raw)
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
