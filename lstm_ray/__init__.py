"""lstm-ray: tune LSTM/GRU/RNN sequence models with Ray Tune, tracked in MLflow (docs/api.md).

    import lstm_ray

    result = lstm_ray.tune(lstm_ray.load_config("configs/quickstart.yaml", ["search.num_samples=4"]))

Importing the package is light (the config layer only): Ray, torch and MLflow load when a sweep starts or a
model loads, so `lstm-ray validate` stays quick.
"""

from lstm_ray.api import Job, SweepFailed, SweepResult, load_config, load_model, resume, submit, tune
from lstm_ray.errors import ConfigError, DataError

__all__ = [
    "ConfigError",
    "DataError",
    "Job",
    "SweepFailed",
    "SweepResult",
    "load_config",
    "load_model",
    "resume",
    "submit",
    "tune",
]
