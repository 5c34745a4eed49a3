"""The chaos suite (`pytest -m chaos`): faults injected into a real multi-node Ray cluster and MLflow server."""
