"""What a Ray cluster has and can scale to, and what one trial of a sweep asks of it.

    nodes = [n for n in ray.nodes() if n["Alive"]]
    types = node_types(nodes)                   # what the autoscaler can add
    fits(trial_demand(cfg), nodes[0]["Resources"])
    refuse_unfit_trial(cfg, [n["Resources"] for n in nodes], types)   # ConfigError: Tune would wait forever
    check_this_machine(cfg)                     # the same before Ray starts in process, and the precision probe

Ray 2.60 has no public API for the node types an autoscaler may launch: the v2 autoscaler reports them to the
GCS (`ray._private.state`, which Ray Data reads too); the v1 autoscaler (`ray up`, `ray start
--autoscaling-config`) keeps them in its config file, read here from its monitor process on the head.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_ray.config import ExperimentConfig, apply_params
from lstm_ray.errors import ConfigError

__all__ = [
    "UNLIMITED",
    "NodeType",
    "autoscaler_config",
    "check_this_machine",
    "fits",
    "how_many_fit",
    "node_types",
    "node_types_from_config",
    "planning_config",
    "refuse_unfit_trial",
    "this_machine",
    "trial_demand",
]


@dataclass
class NodeType:
    """A kind of node the autoscaler can add; `resources` is empty when the launcher detects them at launch."""

    name: str
    resources: dict[str, float]
    max_workers: int  # UNLIMITED: no limit
    labels: dict[str, str] = field(default_factory=dict)  # e.g. lstm-ray/gpu-memory-gb (resources.gpu: auto)


UNLIMITED = -1
SMALLEST_GPU_SHARE = 1 / 16  # resources.gpu: auto gives trials whole sixteenths of a GPU (sweep/gpu_packing.py)
RESOURCE_KEYS = {"CPU": "resources.cpu", "GPU": "resources.gpu", "memory": "resources.memory_mb"}


def trial_demand(cfg: ExperimentConfig) -> dict[str, float]:
    """What one trial asks Ray for; with resources.gpu: auto, the smallest share (each trial's own share is
    sized by `gpu_packing.py` once the GPUs' memory is known)."""
    memory = (cfg.resources.memory_mb or 0) * 2**20
    gpu = planning_config(cfg).resources.gpu
    return {k: v for k, v in (("CPU", cfg.resources.cpu), ("GPU", gpu), ("memory", memory)) if v > 0}


def how_many_fit(demand: dict[str, float], resources: dict[str, float]) -> int:
    """How many trials asking `demand` fit in `resources` at once."""
    return min(math.floor(resources.get(key, 0.0) / amount) for key, amount in demand.items())


def fits(demand: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(key, 0.0) >= amount for key, amount in demand.items())


def refuse_unfit_trial(
    cfg: ExperimentConfig,
    nodes: Sequence[dict[str, float]],
    types: Sequence[NodeType] = (),
    where: str = "the largest node",
) -> None:
    """Raise ConfigError when a trial fits none of `nodes` (each node's resources) and no node type the autoscaler
    can add: Tune would wait for it forever. Names the first resources.* key that no node has enough of, what a
    trial asks and what `where` (the largest node) has, or "resources" when each fits somewhere but no node has
    them all."""
    demand = trial_demand(cfg)
    addable = [t for t in types if t.max_workers != 0]
    if any(fits(demand, node) for node in nodes) or any(not t.resources or fits(demand, t.resources) for t in addable):
        return
    sizes = [*nodes, *(t.resources for t in addable)]
    most = {key: max((size.get(key, 0.0) for size in sizes), default=0.0) for key in demand}
    named = "; node types: " + ", ".join(f"{t.name} ({_amounts(t.resources)})" for t in addable) if addable else ""
    short = [key for key in demand if demand[key] > most[key]]
    if not short:
        raise ConfigError(
            "resources",
            f"a trial asks for {_amounts(demand)} and no node has all of it{named}; lower resources.cpu, "
            "resources.gpu or resources.memory_mb",
        )
    key = short[0]
    raise ConfigError(
        RESOURCE_KEYS[key],
        f"a trial asks for {_amount(key, demand[key])} but {where} has {_amount(key, most[key])}{named}; lower "
        f"{RESOURCE_KEYS[key]}, or run the sweep on a cluster with a node that large (--address)",
    )


def this_machine() -> dict[str, float]:
    """What the Ray started in this process (no address) can give trials: this machine's CPUs, its visible GPUs
    and its memory (more than Ray's `memory`, so a request this allows may still fit no node once Ray runs)."""
    import torch

    try:
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf here: leave memory to the check after Ray starts
        memory = math.inf
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count()), "memory": memory}


def check_this_machine(cfg: ExperimentConfig) -> None:
    """Before the Ray of this process starts: ConfigError when a trial fits none of this machine's resources, or
    its device cannot train the configured precision (`train/precision_probe.py`). Imports no Ray."""
    from lstm_ray.train.precision_probe import check_precision

    machine = this_machine()
    if cfg.resources.gpu == "auto" and not machine["GPU"]:
        raise ConfigError(
            "resources.gpu",
            "auto shares this machine's GPUs but it has none (no --address: Ray starts here); set resources.gpu: 0, "
            "or run the sweep on a cluster with GPUs (--address)",
        )
    cfg = planning_config(cfg)
    refuse_unfit_trial(cfg, [machine], where="this machine (no --address: Ray starts here)")
    check_precision(cfg)


def planning_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with resources.gpu: auto as its smallest share, for checks that ask only whether a trial holds a
    GPU (its device, whether some node has one); each trial's own share is `gpu_packing.py`'s."""
    if cfg.resources.gpu != "auto":
        return cfg
    return apply_params(cfg, {"resources.gpu": SMALLEST_GPU_SHARE})


def _amount(key: str, value: float) -> str:
    if key == "memory":
        return f"{value / 2**20:.0f} MB" if math.isfinite(value) else "unknown MB"
    number = int(value) if float(value).is_integer() else value
    return f"{number} {key}" + ("s" if key in ("CPU", "GPU") and number != 1 else "")


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(_amount(key, resources[key]) for key in RESOURCE_KEYS if key in resources) or "nothing"


def node_types(nodes: list[dict]) -> list[NodeType]:
    """The node types the autoscaler can launch: from the GCS when the autoscaler reported them (v2), else from
    the autoscaler config file on the head; [] when there is no autoscaler."""
    import ray
    from ray._private.state import state

    config = state.get_cluster_config()
    if config is not None and config.node_group_configs:
        return [
            NodeType(g.name, dict(g.resources), g.max_count, dict(getattr(g, "labels", {})))
            for g in config.node_group_configs
        ]
    head = next((n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"]), None)
    if head is None:
        return []
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    on_head = NodeAffinitySchedulingStrategy(head, soft=False)
    probe = ray.remote(num_cpus=0, scheduling_strategy=on_head)(autoscaler_config)
    return node_types_from_config(ray.get(probe.remote(ray.get_runtime_context().gcs_address), timeout=60))


def autoscaler_config(gcs_address: str) -> dict[str, Any]:
    """The config file of the autoscaler of the cluster at `gcs_address` running on this node (the
    `--autoscaling-config` of its monitor process, as `ray up` and `ray start --autoscaling-config` start it),
    or {} when none runs here. Linux only: it reads /proc."""
    import yaml

    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, UnicodeDecodeError):
            continue
        monitor = any(a.endswith("monitor.py") and "autoscaler" in a for a in argv)
        port = gcs_address.rsplit(":", 1)[-1]
        if not monitor or not any(a.startswith("--gcs-address=") and a.endswith(f":{port}") for a in argv):
            continue  # not an autoscaler, or another cluster's on the same machine
        for i, arg in enumerate(argv):
            path = arg.split("=", 1)[1] if arg.startswith("--autoscaling-config=") else None
            if arg == "--autoscaling-config" and i + 1 < len(argv):
                path = argv[i + 1]
            if path:
                return yaml.safe_load(Path(path).expanduser().read_text()) or {}
    return {}


def node_types_from_config(config: dict[str, Any]) -> list[NodeType]:
    """Worker node types of a cluster launcher config (`available_node_types`, without the head's type), each
    capped by the cluster's `max_workers` as the autoscaler caps them."""
    cap = config.get("max_workers", UNLIMITED)
    types = []
    for name, spec in (config.get("available_node_types") or {}).items():
        if name != config.get("head_node_type"):
            most = int(spec.get("max_workers", cap))
            most = most if cap < 0 else min(most, cap)
            types.append(NodeType(name, dict(spec.get("resources") or {}), most, dict(spec.get("labels") or {})))
    return types
