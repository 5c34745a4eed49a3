"""The import path that models logged before lstm-ray's subpackages pickled their wrapper under: keep it, so that
`mlflow.pyfunc.load_model` still finds `lstm_ray.serving.RawRowModel` for them. New code imports
`lstm_ray.tracking.serving`."""

from lstm_ray.tracking.serving import RawRowModel

__all__ = ["RawRowModel"]
