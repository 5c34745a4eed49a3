"""The `resources:` section: what one trial holds (CPUs, GPUs, memory) and how often a failed trial is retried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lstm_ray.config.strict import at_least
from lstm_ray.errors import ConfigError

# Below this a trial's process cannot even hold Python, torch and its data (about 300 MB before training).
MIN_TRIAL_MEMORY_MB = 512


@dataclass
class ResourcesConfig:
    cpu: float = 1.0  # CPU cores per trial (also torch's thread count)
    # GPUs per trial; fractions pack several trials on one GPU; auto: each trial the share its estimated memory needs
    gpu: float | Literal["auto"] = 0.0
    gpu_memory_gb: float | None = None  # auto: memory of the smallest GPU trials run on; default: read from the nodes
    # Data-parallel processes of one trial (DDP); default: resources.gpu above 1, else 1. train.batch_size is global.
    workers: int | None = None
    memory_mb: float | None = None  # a trial's memory: reserved in Ray and a hard limit on its process
    # Retries of a failed trial from its last checkpoint (a lost node, a killed worker); default: 2 on a cluster,
    # 0 on the Ray started in process, which loses no node and where a failing trial would only fail again.
    max_failures: int | None = None

    def check(self) -> None:
        at_least("resources.cpu", self.cpu, 0.0)
        if self.gpu != "auto":
            at_least("resources.gpu", self.gpu, 0.0)
        if self.gpu_memory_gb is not None:
            at_least("resources.gpu_memory_gb", self.gpu_memory_gb, 1.0)
        if self.max_failures is not None:
            at_least("resources.max_failures", self.max_failures, 0)
        if self.memory_mb is not None:
            at_least("resources.memory_mb", self.memory_mb, MIN_TRIAL_MEMORY_MB)
        if self.cpu == 0 and self.gpu == 0:
            raise ConfigError("resources.cpu", "a trial needs a CPU or a GPU; set resources.cpu to 1")
        if self.gpu != "auto" and self.gpu > 1 and self.gpu != int(self.gpu):
            raise ConfigError("resources.gpu", f"above 1 it must be a whole number, got {self.gpu!r}")
        if self.gpu == "auto" and (self.workers or 1) > 1:
            raise ConfigError(
                "resources.workers",
                "resources.gpu: auto gives a trial a share of one GPU and data-parallel workers need a GPU each; "
                "set resources.gpu to the number of workers, or resources.workers to 1",
            )
        self._check_workers()

    @property
    def parallel_workers(self) -> int:
        """How many data-parallel processes train one trial: resources.workers, or one per GPU above 1."""
        if self.workers is not None:
            return self.workers
        return int(self.gpu) if isinstance(self.gpu, (int, float)) and self.gpu > 1 else 1

    def _check_workers(self) -> None:
        """With GPUs each worker trains on its own GPU (NCCL allows no two on one); on CPUs each needs a core."""
        if self.workers is not None:
            at_least("resources.workers", self.workers, 1)
        workers = self.parallel_workers
        if workers == 1 or not isinstance(self.gpu, (int, float)):
            return
        if 0 < self.gpu < 1:
            raise ConfigError(
                "resources.workers",
                f"{workers} workers cannot share a GPU fraction (resources.gpu {self.gpu:g}); each worker needs a "
                f"whole GPU: set resources.gpu to {workers} or resources.workers to 1",
            )
        if self.gpu >= 1 and self.gpu % workers:
            raise ConfigError(
                "resources.workers",
                f"resources.gpu {self.gpu:g} must be a multiple of resources.workers {workers} (one worker per GPU); "
                f"set resources.workers to {int(self.gpu)} or resources.gpu to {workers}",
            )
        if self.gpu == 0 and self.cpu < workers:
            raise ConfigError(
                "resources.workers",
                f"{workers} workers need at least {workers} CPUs (a thread each), resources.cpu is {self.cpu:g}; "
                f"raise resources.cpu to {workers} or lower resources.workers",
            )
