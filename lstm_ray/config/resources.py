"""The `resources:` section: what one trial holds (CPUs, GPUs, memory) and how often a failed trial is retried."""

from __future__ import annotations

from dataclasses import dataclass

from lstm_ray.config.strict import at_least
from lstm_ray.errors import ConfigError

# Below this a trial's process cannot even hold Python, torch and its data (about 300 MB before training).
MIN_TRIAL_MEMORY_MB = 512


@dataclass
class ResourcesConfig:
    cpu: float = 1.0  # CPU cores per trial (also torch's thread count)
    gpu: float = 0.0  # GPUs per trial; fractions pack several trials on one GPU
    memory_mb: float | None = None  # a trial's memory: reserved in Ray and a hard limit on its process
    # Retries of a failed trial from its last checkpoint (a lost node, a killed worker); default: 2 on a cluster,
    # 0 on the Ray started in process, which loses no node and where a failing trial would only fail again.
    max_failures: int | None = None

    def check(self) -> None:
        at_least("resources.cpu", self.cpu, 0.0)
        at_least("resources.gpu", self.gpu, 0.0)
        if self.max_failures is not None:
            at_least("resources.max_failures", self.max_failures, 0)
        if self.memory_mb is not None:
            at_least("resources.memory_mb", self.memory_mb, MIN_TRIAL_MEMORY_MB)
        if self.cpu == 0 and self.gpu == 0:
            raise ConfigError("resources.cpu", "a trial needs a CPU or a GPU; set resources.cpu to 1")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ConfigError("resources.gpu", f"above 1 it must be a whole number, got {self.gpu!r}")
