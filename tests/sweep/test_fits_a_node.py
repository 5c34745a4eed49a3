"""A trial that fits no node is an error before the sweep, not a sweep that waits forever.

For the Ray started in process (no --address) the check runs before Ray, against this machine's CPUs, GPUs and
memory; on a cluster without an autoscaler it runs as soon as the driver joins, against the live nodes.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import yaml
from cli_runs import run_cli
from cluster_runs import lstm_ray, running_cluster, tiny_sweep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.sweep.capacity import NodeType, check_this_machine, refuse_unfit_trial, this_machine

MACHINE = this_machine()
MACHINE_MB = MACHINE["memory"] / 2**20
GPUS = int(MACHINE["GPU"])
# What a trial asks beyond this machine, per resources key; gpu above 1 must be whole, at most 1 any fraction.
TOO_LARGE = {
    "cpu": st.integers(int(MACHINE["CPU"]) + 1, 10_000) | st.floats(MACHINE["CPU"] + 0.01, 1e4),
    "gpu": st.integers(GPUS + 1, 64) | (st.floats(0.01, 1.0) if GPUS == 0 else st.nothing()),
    "memory_mb": st.integers(math.ceil(MACHINE_MB) + 1, 10**9),
}
SETTINGS = settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def with_resources(tiny_raw: dict, **resources) -> dict:
    return tiny_raw | {"resources": tiny_raw["resources"] | resources}


@SETTINGS
@given(data=st.data(), key=st.sampled_from(sorted(TOO_LARGE)))
def test_a_trial_larger_than_this_machine_is_refused_naming_the_key(tiny_raw, data, key):
    asked = data.draw(TOO_LARGE[key])
    one_worker = {"workers": 1} if key == "gpu" else {}  # else the batch of 128 must split over the GPUs drawn
    cfg = parse_config(with_resources(tiny_raw, **{key: asked}, **one_worker))
    with pytest.raises(ConfigError) as refused:
        check_this_machine(cfg)
    assert refused.value.key == f"resources.{key}"
    message = refused.value.message
    assert message.startswith("a trial asks for ") and "but this machine (no --address: Ray starts here) has" in message
    assert f"lower resources.{key}" in message and "\n" not in message


@SETTINGS
@given(gpu=st.floats(1.0, 64.0).filter(lambda g: not g.is_integer()))
def test_a_fraction_of_a_gpu_above_one_is_refused(tiny_raw, gpu):
    with pytest.raises(ConfigError, match=r"^resources\.gpu: above 1 it must be a whole number"):
        parse_config(with_resources(tiny_raw, gpu=gpu))


def test_a_trial_that_fits_this_machine_passes(tiny_raw):
    check_this_machine(parse_config(with_resources(tiny_raw, cpu=1)))


def test_each_resource_fitting_a_different_node_is_still_no_fit(tiny_raw):
    cfg = parse_config(with_resources(tiny_raw, cpu=4, gpu=1))
    nodes = [{"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}]
    with pytest.raises(ConfigError, match=r"^resources: a trial asks for 4 CPUs, 1 GPU and no node has all of it"):
        refuse_unfit_trial(cfg, nodes)
    refuse_unfit_trial(cfg, nodes, [NodeType("big", {"CPU": 8.0, "GPU": 2.0}, 2)])  # the autoscaler can add one
    with pytest.raises(ConfigError, match=r"^resources\.cpu: .* has 2 CPUs; node types: big \(2 CPUs, 2 GPUs\)"):
        refuse_unfit_trial(cfg, [], [NodeType("big", {"CPU": 2.0, "GPU": 2.0}, 2)])


NO_RAY = """
import sys
sys.path.insert(0, {tests!r})
from conftest import TINY
from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.sweep.capacity import check_this_machine
try:
    check_this_machine(parse_config(TINY | {{"resources": {{"cpu": 1, "gpu": {gpu}}}}}))
except ConfigError as err:
    print(err)
print("ray imported" if "ray" in sys.modules else "no ray")
"""


def test_the_check_before_the_sweep_imports_no_ray(request):
    script = NO_RAY.format(tests=str(request.config.rootpath / "tests"), gpu=GPUS + 1)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-2].startswith(f"resources.gpu: a trial asks for {GPUS + 1} GPU")
    assert done.stdout.splitlines()[-1] == "no ray"


def test_the_cli_refuses_a_gpu_trial_on_a_machine_without_enough_in_one_line(tiny_raw, tmp_path, monkeypatch):
    raw = with_resources(tiny_raw, gpu=GPUS + 1) | {"tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    (tmp_path / "too-large.yaml").write_text(yaml.safe_dump(raw | {"storage": {"path": str(tmp_path / "results")}}))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    done = run_cli("tune", "too-large.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "NO_RAY" in done.stderr.splitlines()  # refused before Ray was imported
    lines = [line for line in done.stderr.splitlines() if line not in ("NO_RAY", "RAY_IMPORTED")]
    assert len(lines) == 1 and lines[0].startswith(f"error: resources.gpu: a trial asks for {GPUS + 1} GPU")
    assert "starting Ray" not in done.stdout and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_ray_started_here_refuses_a_trial_larger_than_it(tiny_raw, local_ray):
    from lstm_ray.sweep.tuning import prepare_tune

    with pytest.raises(ConfigError, match=r"^resources\.cpu: a trial asks for 3 CPUs but the largest node has 2 CPUs"):
        prepare_tune(parse_config(with_resources(tiny_raw, cpu=3)), None, False)


@pytest.mark.slow
@pytest.mark.cluster
def test_a_cluster_without_autoscaler_refuses_a_trial_no_node_fits(tmp_path):
    """Head without CPUs + one worker with 2 CPUs and 1 fake GPU: 2 GPUs fit nowhere, fp16 cannot run there."""
    with running_cluster(tmp_path / "cluster", workers=1) as cluster:
        sweep = tiny_sweep(tmp_path)
        address = ["--address", cluster.gcs_address]
        tuned = lstm_ray(cluster, "tune", str(sweep), "--set", "resources.gpu=2", *address, timeout=180)
        assert tuned.returncode == 2, f"{tuned.stdout}\n{tuned.stderr}"
        refusal = tuned.stderr.strip().splitlines()[-1]
        assert refusal.startswith("error: resources.gpu: a trial asks for 2 GPUs but the largest node has 1 GPU;")
        too_large = ["--set", "resources.gpu=2", "--set", "train.precision=bf16"]
        checked = lstm_ray(cluster, "preflight", str(sweep), *too_large, *address, "--timeout", "20")
        assert checked.returncode == 1, f"{checked.stdout}\n{checked.stderr}"
        assert "FAIL resources: no live node or autoscaler node type fits a trial's {CPU: 1, GPU: 2}" in checked.stdout
        assert "node types: none found" in checked.stdout
        assert "FAIL precision: not tried: no node a trial fits on" in checked.stdout
        fp16 = lstm_ray(cluster, "preflight", str(sweep), "--set", "train.precision=fp16", *address, "--timeout", "30")
        assert fp16.returncode == 1, f"{fp16.stdout}\n{fp16.stderr}"
        assert "FAIL precision: fp16 cannot run where trials run: node " in fp16.stdout
        assert "train.precision: fp16 needs a GPU" in fp16.stdout, fp16.stdout  # a fake GPU is no CUDA device
        assert "OK   resources:" in fp16.stdout and "OK   storage:" in fp16.stdout
