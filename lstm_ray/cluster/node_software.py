"""What preflight asks of the software on the cluster's nodes: a torch that has CUDA where trials ask for GPUs,
and the driver's lstm-ray, torch, Ray and Python on every node.

    answers = {name: cuda_report() from a GPU task on each node a trial fits on}
    ok, detail = cuda_verdict(answers)               # preflight's `cuda` line
    ok, detail = versions_verdict(software_versions(), {name: software_versions() from a task on each node})

The probes (`cuda_report`, `software_versions`) run as Ray tasks on the nodes (`preflight.on_nodes`); a probe that
failed there answers a string with the error instead of its report. The verdicts are plain functions of those
answers. A CPU build of torch on a GPU node trains every "GPU" trial on the CPU with no error, only slowly; a
driver whose Ray or Python differs from the nodes' cannot unpickle what they send, and a torch that differs may
load checkpoints differently.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = [
    "CUDA_FIX",
    "VERSIONS",
    "asks_for_gpus",
    "cuda_report",
    "cuda_verdict",
    "software_versions",
    "versions_verdict",
]

CUDA_FIX = (
    "install a CUDA build of torch on the GPU nodes (the PyPI wheel for Linux x86-64, as the worker_setup_commands "
    "of cluster/aws-gpu.yaml and the image of cluster/kuberay/Dockerfile do), or set resources.gpu: 0"
)
VERSIONS = ("lstm-ray", "torch", "ray", "python")  # what must match between the driver and every node
NOT_INSTALLED = "not installed"


def asks_for_gpus(resources_gpu: float | str) -> bool:
    """Whether trials ask Ray for GPUs: a share above 0, or "auto" (a share sized by memory)."""
    return resources_gpu != 0


def cuda_report() -> dict[str, Any]:
    """On a node, inside a task that holds a GPU: what its torch sees of CUDA."""
    import ray
    import torch

    available = torch.cuda.is_available()
    return {
        "ip": ray.util.get_node_ip_address(),
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,  # None in a CPU build
        "available": available,
        "devices": torch.cuda.device_count() if available else 0,
        "device_name": torch.cuda.get_device_name(0) if available else "",
    }


def cuda_verdict(answers: dict[str, dict[str, Any] | str]) -> tuple[bool, str]:
    """(ok, detail) of the `cuda` check from each node's `cuda_report` (or its error): it fails when any node's
    torch cannot use the GPU the task held there."""
    if not answers:
        return False, "not tried: no node a trial fits on (see resources)"
    problems, seen = [], []
    for name, answer in sorted(answers.items()):
        if isinstance(answer, str):
            problems.append(f"node {name}: {answer}")
        elif not answer["available"] or answer["devices"] == 0:
            build = f"CUDA {answer['cuda_version']}" if answer["cuda_version"] else "a CPU build"
            problems.append(f"node {name} ({answer['ip']}): torch {answer['torch']} is {build} and sees no CUDA device")
        else:
            seen.append(
                f"node {name} ({answer['ip']}): torch {answer['torch']}, CUDA {answer['cuda_version']}, "
                f"{answer['devices']} device(s) visible to a trial ({answer['device_name']})"
            )
    if problems:
        return False, f"trials ask for GPUs but {'; '.join(problems)}. Fix: {CUDA_FIX}"
    return True, "; ".join(seen)


def software_versions() -> dict[str, str]:
    """lstm-ray (as `lstm-ray --version` reads it), torch, Ray and Python (major.minor) of this process."""
    import ray
    import torch

    try:
        lstm_ray = version("lstm-ray")
    except PackageNotFoundError:  # the code came in a job's py_modules onto a node that never installed it
        lstm_ray = NOT_INSTALLED
    return {
        "lstm-ray": lstm_ray,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }


def versions_verdict(driver: dict[str, str], nodes: dict[str, dict[str, str] | str]) -> tuple[bool, str]:
    """(ok, detail) of the `versions` check: every node's `software_versions` (or its error) against the
    driver's. Python counts as major.minor; torch without its local build tag (+cpu, +cu128), since the head may
    run a CPU build while the GPU nodes run a CUDA build of the same release."""
    problems = []
    for name, answer in sorted(nodes.items()):
        if isinstance(answer, str):
            problems.append(f"node {name}: {answer}")
            continue
        differ = [
            f"{key} {answer.get(key, NOT_INSTALLED)} (driver {driver[key]})"
            for key in VERSIONS
            if _release(key, answer.get(key, NOT_INSTALLED)) != _release(key, driver[key])
        ]
        if differ:
            problems.append(f"node {name}: {', '.join(differ)}")
    if problems:
        wanted = ", ".join(f"{key} {driver[key]}" for key in VERSIONS)
        return False, (
            f"the nodes do not run the driver's software: {'; '.join(problems)}. Fix: install the driver's versions "
            f"({wanted}) on every node (pin them in the cluster YAML's setup commands or its image), or run the "
            "driver with the nodes' versions"
        )
    shown = ", ".join(f"{key} {driver[key]}" for key in VERSIONS)
    return True, f"{len(nodes)} node(s) run the driver's {shown}"


def _release(key: str, text: str) -> str:
    if key == "python":
        return ".".join(text.split(".")[:2])
    if key == "torch":
        return text.split("+")[0]
    return text
