"""`resources.gpu: auto`: each trial asks Ray for the smallest share of a GPU that holds its estimated memory.

    packing = GpuPacking.for_ray(cfg, data)                 # ConfigError: unknown GPU memory, a trial too big
    tune.with_resources(trainable, packing.trial_resources) # Tune calls it with each trial's params
    packing.share(trial_cfg)                                # e.g. 0.1875 (3/16 of a GPU)

A trial needs `estimate x SAFETY_FACTOR + SAFETY_BYTES` (the estimate: `train/memory_estimate.py`), rounded up to
a sixteenth of a GPU so shares pack without gaps. Shares are sized against the smallest GPU of the cluster, so a
trial fits whichever GPU Ray places it on. A GPU's memory comes from, in order: resources.gpu_memory_gb;
torch.cuda for a node on this machine; the node's label `lstm-ray/gpu-memory-gb` (cluster YAMLs set it per
node type; `ray start --labels`); the accelerator type Ray detected on the node (`accelerator_type:A10G` -> 24 GB).
Before the sweep, the largest trial its search space can propose (every searched size at its top) must fit.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.data.dataset import PreparedData
from lstm_ray.data.prepared import prepared_key
from lstm_ray.errors import ConfigError
from lstm_ray.sweep.capacity import SMALLEST_GPU_SHARE, NodeType
from lstm_ray.train.memory_estimate import TrialMemory, estimate_trial_memory

__all__ = [
    "AUTO",
    "GPU_MEMORY_LABEL",
    "SHARE_STEP",
    "GpuPacking",
    "gpu_memory_of",
    "gpu_share_verdict",
    "share_of_gpu",
]

AUTO = "auto"
SHARE_STEP = SMALLEST_GPU_SHARE  # shares are whole sixteenths of a GPU: 16 trials at most per GPU, no slivers left
SAFETY_FACTOR = 1.2  # the estimate's error on a GPU (see memory_estimate.py) and the caching allocator's rounding
SAFETY_BYTES = 256 * 2**20  # fragmentation, cuDNN workspaces and kernels' scratch
GPU_MEMORY_LABEL = "lstm-ray/gpu-memory-gb"
GIB = 2**30
# Memory of the GPU models Ray names in `accelerator_type:X` (ray.util.accelerators); the smaller size where a
# model comes in two (A100: 40 GB; Ray names the 80 GB one A100-80G only when told).
ACCELERATOR_MEMORY_GB = {
    "T4": 16, "V100": 16, "P100": 16, "P4": 8, "K80": 12, "A10G": 24, "L4": 24, "L40S": 48, "A100": 40,
    "A100-40G": 40, "A100-80G": 80, "H100": 80, "H200": 141, "H20": 96, "B200": 180, "RTX-PRO-6000": 96,
}  # fmt: skip
# The config values that set a trial's memory; the largest trial takes each at its top.
GROWS_WITH = (
    "model.hidden_size",
    "model.num_layers",
    "model.embedding_dim",
    "model.recurrent_dropout",
    "model.bidirectional",
    "train.batch_size",
    "train.momentum",
    "data.lookback",
    "data.folds",
)
# Values whose memory does not grow in one direction: every searched option is tried.
CHOICES = ("model.cell", "model.head", "train.optimizer", "train.precision")
EMPTY = SimpleNamespace(node_group_configs=())  # no autoscaler reported its node types
ALWAYS_NAMED = ("model.hidden_size", "model.num_layers", "train.batch_size", "data.lookback")


def share_of_gpu(need: TrialMemory, gpu_bytes: int) -> float:
    """The GPU share that holds `need` with the safety margin, in whole SHARE_STEPs; above 1 when no GPU of
    `gpu_bytes` holds it."""
    wanted = (need.total * SAFETY_FACTOR + SAFETY_BYTES) / gpu_bytes
    return math.ceil(round(wanted / SHARE_STEP, 9)) * SHARE_STEP


@dataclass(frozen=True)
class DataShape:
    """What the estimate needs of the prepared data, per prepared variant (`PreparedData.prepared_key`)."""

    n_inputs: dict[tuple[str, ...], int]
    n_targets: int
    n_classes: int
    max_length: int  # classify: the longest sequence, every batch's padded steps

    @classmethod
    def of(cls, data: PreparedData) -> DataShape:
        variants = {data.prepared_key: data, **data.variants}
        return cls(
            n_inputs={key: len(v.input_index) for key, v in variants.items()},
            n_targets=len(data.target_index),
            n_classes=data.n_classes,
            max_length=data.max_length if data.task == "classify" else 0,
        )


@dataclass(frozen=True)
class GpuPacking:
    """Per-trial GPU shares for one sweep: `experiment` (resources.gpu: auto) on GPUs of `gpu_bytes` each.
    Small enough to pickle into Tune's experiment state: it holds no data, only its shape."""

    experiment: ExperimentConfig
    shape: DataShape
    gpu_bytes: int

    @classmethod
    def for_ray(cls, cfg: ExperimentConfig, data: PreparedData) -> GpuPacking:
        """The packing of `cfg` on the GPUs of the Ray this process is connected to: resources.gpu_memory_gb,
        else the smallest GPU of its live nodes and of the node types its autoscaler reported. Raises
        ConfigError when a GPU's memory is unknown or the largest trial of the search space fits no GPU."""
        import ray
        from ray._private.state import state

        if cfg.resources.gpu_memory_gb:
            gpu_bytes = int(cfg.resources.gpu_memory_gb * 10**9)
        else:
            groups = (state.get_cluster_config() or EMPTY).node_group_configs
            types = [NodeType(g.name, dict(g.resources), g.max_count, dict(getattr(g, "labels", {}))) for g in groups]
            here = (ray.util.get_node_ip_address(), this_machine_gpu_bytes())
            gpu_bytes = gpu_memory_of(ray.nodes(), types, here)
        packing = cls(cfg, DataShape.of(data), gpu_bytes)
        packing.check_largest_trial()
        return packing

    def memory(self, cfg: ExperimentConfig) -> TrialMemory:
        """The estimated peak GPU memory of a trial of `cfg` (the experiment with its params applied)."""
        steps = self.shape.max_length or cfg.data.lookback
        n_inputs = self.shape.n_inputs.get(prepared_key(cfg.data), max(self.shape.n_inputs.values()))
        if cfg.model.embedding_vectors:
            vocab, dim = _vectors_shape(cfg.model.embedding_vectors)
            cfg = apply_params(cfg, {"model.vocab_size": vocab, "model.embedding_dim": dim})
        return estimate_trial_memory(
            cfg, n_inputs=n_inputs, steps=steps, n_targets=self.shape.n_targets, n_classes=self.shape.n_classes
        )

    def share(self, cfg: ExperimentConfig) -> float:
        return min(1.0, share_of_gpu(self.memory(cfg), self.gpu_bytes))

    def trial_resources(self, params: dict[str, Any]) -> dict[str, float]:
        """Tune's per-trial resources (`tune.with_resources`) for a trial with `params` (dotted paths)."""
        resources = self.experiment.resources
        return {
            "cpu": resources.cpu,
            "gpu": self.share(apply_params(self.experiment, params)),
            "memory": (resources.memory_mb or 0) * 2**20,
        }

    def check_largest_trial(self) -> None:
        """ConfigError on resources.gpu when the largest trial of the search space needs more than one GPU,
        naming the values that make it that large."""
        cfg, values = max(_largest_trials(self.experiment), key=lambda trial: self.memory(trial[0]).total)
        need = self.memory(cfg)
        if share_of_gpu(need, self.gpu_bytes) <= 1:
            return
        named = ", ".join(f"{path}={value}" for path, value in values.items())
        wanted = (need.total * SAFETY_FACTOR + SAFETY_BYTES) / GIB
        raise ConfigError(
            "resources.gpu",
            f"auto: the largest trial of the search space ({named}) needs about {wanted:.1f} GiB of GPU memory "
            f"(estimate x {SAFETY_FACTOR} + {SAFETY_BYTES // 2**20} MiB) but the smallest GPU has "
            f"{self.gpu_bytes / GIB:.1f} GiB; lower those values in search.space, or run on larger GPUs",
        )


def gpu_share_verdict(cfg: ExperimentConfig, data: PreparedData) -> tuple[bool, str]:
    """For preflight, on the Ray this process joined: whether the largest trial of `cfg` (resources.gpu: auto)
    fits the smallest GPU, and what was found or what to fix."""
    try:
        packing = GpuPacking.for_ray(cfg, data)
    except ConfigError as err:
        return False, err.message
    cfg_largest = max((trial for trial, _ in _largest_trials(cfg)), key=lambda trial: packing.memory(trial).total)
    share = packing.share(cfg_largest)
    return True, f"the largest trial takes {share:g} of the smallest GPU ({packing.gpu_bytes / GIB:.1f} GiB)"


def gpu_memory_of(
    nodes: Sequence[dict], types: Sequence[NodeType] = (), here: tuple[str, int | None] = ("", None)
) -> int:
    """Bytes of the smallest GPU among `nodes` (ray.nodes() entries, dead ones skipped) and node `types`;
    `here` is this machine's address and its smallest CUDA device's bytes (None: no CUDA), which torch measures
    exactly for a node on this machine.

    Raises ConfigError when no node has a GPU or a node's GPU memory is unknown."""
    sizes, unknown = [], []
    for node in nodes:
        if node.get("Alive", True) and node.get("Resources", {}).get("GPU", 0) > 0:
            if node.get("NodeManagerAddress") == here[0] and here[1]:
                sizes.append(here[1] / 10**9)
                continue
            gb = _gpu_gb(node.get("Labels") or {}, node["Resources"])
            if gb:
                sizes.append(gb)
            else:
                unknown.append(f"the node at {node.get('NodeManagerAddress', '?')}")
    for kind in types:
        if kind.max_workers != 0 and kind.resources.get("GPU", 0) > 0:
            gb = _gpu_gb(kind.labels, kind.resources)
            if gb:
                sizes.append(gb)
            else:
                unknown.append(f"node type {kind.name}")
    if unknown:
        raise ConfigError(
            "resources.gpu",
            f"auto needs each GPU's memory but {', '.join(unknown)} does not say it; give the node type the label "
            f'{GPU_MEMORY_LABEL}: "24" (its GPU memory in GB; ray start --labels), or set resources.gpu_memory_gb',
        )
    if not sizes:
        raise ConfigError(
            "resources.gpu",
            "auto shares GPUs but no node has one yet; set resources.gpu_memory_gb (an autoscaler adds GPU nodes "
            "for pending trials), or resources.gpu: 0",
        )
    return int(min(sizes) * 10**9)


def this_machine_gpu_bytes() -> int | None:
    """The smallest visible CUDA device's memory on this machine; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))


def _gpu_gb(labels: dict[str, str], resources: dict[str, float]) -> float | None:
    if GPU_MEMORY_LABEL in labels:
        try:
            return float(labels[GPU_MEMORY_LABEL])
        except ValueError:
            raise ConfigError(
                "resources.gpu", f"label {GPU_MEMORY_LABEL} must be a number of GB, got {labels[GPU_MEMORY_LABEL]!r}"
            ) from None
    types = [key.split(":", 1)[1] for key in resources if key.startswith("accelerator_type:")]
    known = [ACCELERATOR_MEMORY_GB[t] for t in types if t in ACCELERATOR_MEMORY_GB]
    return min(known) if known else None


def _largest_trials(cfg: ExperimentConfig) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """The trials with every GROWS_WITH value at its top, one per combination of searched CHOICES, each with the
    values that make it large (searched ones, and the ALWAYS_NAMED sizes)."""
    space = cfg.parsed_space()
    top = {path: max(space[path].representative_values()) for path in GROWS_WITH if path in space}
    options = {path: space[path].representative_values() for path in CHOICES if path in space}
    trials = []
    for combination in itertools.product(*options.values()):
        params = top | dict(zip(options, combination, strict=True))
        try:
            trial = apply_params(cfg, params)
        except ConfigError:  # a combination no trial can have (e.g. momentum with adam is fine, nesterov is not)
            continue
        named = {path: _value(trial, path) for path in (*ALWAYS_NAMED, *params)}
        trials.append((trial, named))
    return trials or [(cfg, {path: _value(cfg, path) for path in ALWAYS_NAMED})]


def _value(cfg: ExperimentConfig, path: str) -> Any:
    section, _, key = path.partition(".")
    return getattr(getattr(cfg, section), key)


@functools.cache
def _vectors_shape(path: str) -> tuple[int, int]:
    from lstm_ray.train.embeddings import read_vectors

    matrix = read_vectors(path).matrix
    return len(matrix), int(matrix.shape[1])
