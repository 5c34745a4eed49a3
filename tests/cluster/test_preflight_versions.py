"""Preflight's checks of the nodes' software (cluster/node_software.py): CUDA in the torch of the GPU nodes, and
the driver's lstm-ray, torch, Ray and Python on every node.

The verdicts are tested on the reports the probes really give here, altered where a real node cannot be made to
differ; the checks end to end on a local multi-node cluster whose fake-GPU worker has this machine's CPU torch.
"""

from __future__ import annotations

import pytest
from cluster_runs import lstm_ray, running_cluster, tiny_sweep
from hypothesis import given
from hypothesis import strategies as st

from lstm_ray.cluster.node_software import (
    CUDA_FIX,
    VERSIONS,
    asks_for_gpus,
    cuda_report,
    cuda_verdict,
    software_versions,
    versions_verdict,
)

DRIVER = software_versions()
parts = st.lists(st.integers(0, 30), min_size=3, max_size=3)
local_tags = st.sampled_from(["", "+cpu", "+cu118", "+cu128", "+rocm6.2"])


@given(
    key=st.sampled_from(VERSIONS),
    driver_parts=parts,
    changed=st.lists(st.booleans(), min_size=3, max_size=3),  # which of major, minor, patch the node has apart
    tag=local_tags,
)
def test_a_node_fails_exactly_when_a_release_differs_from_the_drivers(key, driver_parts, changed, tag):
    node_parts = [part + 1 if change else part for part, change in zip(driver_parts, changed, strict=True)]
    driver_release, node_release = (".".join(map(str, p)) for p in (driver_parts, node_parts))
    driver = DRIVER | {key: driver_release}
    node = DRIVER | {key: node_release + (tag if key == "torch" else "")}
    ok, detail = versions_verdict(driver, {"a1b2c3d4": driver, "e5f6a7b8": node})
    compared = 2 if key == "python" else 3  # python: major.minor; a patch release still runs the same code
    differs = any(changed[:compared])
    assert ok is not differs, detail
    if differs:
        assert f"node e5f6a7b8: {key} {node[key]} (driver {driver_release})" in detail
        assert "a1b2c3d4" not in detail  # the matching node is not blamed
        assert "Fix: install the driver's versions" in detail
    else:
        assert detail.startswith("2 node(s) run the driver's lstm-ray ")


def test_a_node_whose_probe_failed_fails_the_check_naming_it():
    ok, detail = versions_verdict(DRIVER, {"a1b2c3d4": DRIVER, "e5f6a7b8": "no answer within 10 s"})
    assert not ok and "node e5f6a7b8: no answer within 10 s" in detail


def test_the_versions_are_those_lstm_ray_torch_ray_and_python_report():
    import platform
    from importlib.metadata import version

    import ray
    import torch

    assert DRIVER == {
        "lstm-ray": version("lstm-ray"),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }


def test_gpu_trials_ask_for_the_cuda_check():
    assert not asks_for_gpus(0) and not asks_for_gpus(0.0)
    assert asks_for_gpus(0.25) and asks_for_gpus(2) and asks_for_gpus("auto")


def test_a_cpu_build_of_torch_fails_the_cuda_check_with_the_fix():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine's torch has CUDA")
    report = cuda_report()
    ok, detail = cuda_verdict({"a1b2c3d4": report})
    assert not ok
    assert f"node a1b2c3d4 ({report['ip']}): torch {torch.__version__} is a CPU build and sees no CUDA device" in detail
    assert CUDA_FIX in detail


def test_a_node_whose_torch_sees_its_gpu_passes_and_says_what_it_sees():
    report = cuda_report() | {"available": True, "devices": 1, "cuda_version": "12.8", "device_name": "NVIDIA L4"}
    ok, detail = cuda_verdict({"a1b2c3d4": report})
    assert ok and "CUDA 12.8, 1 device(s) visible to a trial (NVIDIA L4)" in detail


def test_a_cuda_build_that_sees_no_device_fails():
    report = cuda_report() | {"available": False, "devices": 0, "cuda_version": "12.8"}
    ok, detail = cuda_verdict({"a1b2c3d4": report})
    assert not ok and "is CUDA 12.8 and sees no CUDA device" in detail


def test_no_node_to_try_is_no_pass():
    ok, detail = cuda_verdict({})
    assert not ok and "not tried" in detail


def checks(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.startswith(("OK ", "FAIL "))]
    return {line.split()[1].rstrip(":"): line for line in lines}


@pytest.mark.slow
@pytest.mark.cluster
def test_on_a_local_cluster_versions_match_and_a_fake_gpu_node_has_no_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine's torch has CUDA: the fake-GPU worker would pass")
    with running_cluster(tmp_path / "cluster", workers=1) as handle:
        sweep = tiny_sweep(tmp_path)  # trials ask for 0.5 GPU
        address = ("--address", handle.dashboard_url, "--timeout", "20")
        gpu = lstm_ray(handle, "preflight", str(sweep), *address)
        cpu = lstm_ray(handle, "preflight", str(sweep), "--set", "resources.gpu=0", *address)
    found = checks(gpu.stdout)
    assert gpu.returncode == 1, f"{gpu.stdout}\n{gpu.stderr}"
    assert list(found)[:4] == ["config", "resources", "versions", "cuda"]
    assert found["versions"].startswith("OK   versions: 2 node(s) run the driver's lstm-ray"), found["versions"]
    assert found["cuda"].startswith("FAIL cuda: trials ask for GPUs but node "), found["cuda"]
    assert f"torch {torch.__version__} is a CPU build and sees no CUDA device" in found["cuda"]
    assert CUDA_FIX in found["cuda"]
    assert found["storage"].startswith("OK ") and found["mlflow"].startswith("OK ")
    assert cpu.returncode == 0, f"{cpu.stdout}\n{cpu.stderr}"
    assert list(checks(cpu.stdout)) == ["config", "resources", "versions", "storage", "mlflow"]
