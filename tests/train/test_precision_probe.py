"""The precision probe: a tiny model of each configured cell tried under autocast before any trial trains.

A CPU without AVX-512 bf16 is made for real by capping oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA, read once at process
start) in a subprocess; on such a CPU oneDNN's bf16 LSTM has no kernel, while its GRU and RNN still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from cli_runs import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.train.precision_probe import check_precision, precision_problem, trial_device

CPU = torch.device("cpu")
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2"}  # oneDNN as on a CPU with AVX2 and no AVX-512

ON_AN_AVX2_CPU = """
import json, sys
import torch
sys.path.insert(0, {tests!r})
from conftest import TINY
from lstm_ray.config import parse_config
from lstm_ray.errors import ConfigError
from lstm_ray.train.precision_probe import check_precision, precision_problem

def refusal(**sections):
    raw = TINY | {{key: TINY.get(key, {{}}) | value for key, value in sections.items()}}
    try:
        check_precision(parse_config(raw), torch.device("cpu"))
    except ConfigError as err:
        return f"error: {{err}}"
    return ""

try:  # the failure the probe exists for, from torch itself
    with torch.autocast("cpu", torch.bfloat16):
        torch.nn.LSTM(1, 4, batch_first=True)(torch.zeros(2, 3, 1))
    raw_error = ""
except RuntimeError as err:
    raw_error = str(err)
print(json.dumps({{
    "raw_error": raw_error,
    "problems": {{cell: precision_problem("bf16", cell, "cpu") for cell in ("lstm", "gru", "rnn")}},
    "bf16_lstm": refusal(train={{"precision": "bf16"}}),
    "bf16_gru": refusal(train={{"precision": "bf16"}}, model={{"cell": "gru"}}),
    "searched_lstm": refusal(
        model={{"cell": "gru"}}, search={{"space": {{"model.cell": {{"choice": ["gru", "lstm"]}}}}}},
        train={{"precision": "bf16"}},
    ),
}}))
"""


@pytest.fixture(scope="module")
def avx2_cpu(request) -> dict:
    """What the probe finds in a process whose oneDNN may use AVX2 only; skips where oneDNN ignores the cap."""
    tests = str(request.config.rootpath / "tests")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ON_AN_AVX2_CPU.format(tests=tests))],
        env=os.environ | AVX2_ONLY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["raw_error"]:
        pytest.skip("this torch's oneDNN runs a bf16 LSTM even at AVX2 (not an x86 oneDNN build?)")
    return found


def test_avx2_reproduces_the_onednn_failure_the_probe_guards_against(avx2_cpu):
    assert "could not create a primitive descriptor for the LSTM forward propagation primitive" in avx2_cpu["raw_error"]
    assert avx2_cpu["problems"]["lstm"].startswith("could not create a primitive descriptor")


def test_a_cpu_without_bf16_lstm_kernels_refuses_bf16_in_one_line_with_the_fix(avx2_cpu):
    line = avx2_cpu["bf16_lstm"]
    assert line.startswith("error: train.precision: bf16 cannot train a lstm on this cpu (could not create")
    assert line.endswith("set train.precision: fp32, or run the trials on a GPU or on a CPU with AVX-512 bf16 support")
    assert "\n" not in line and "ONEDNN_VERBOSE" not in line


def test_a_bf16_sweep_on_such_a_cpu_is_one_error_line_before_any_trial(avx2_cpu, tiny_raw, tmp_path, monkeypatch):
    raw = tiny_raw | {"train": tiny_raw["train"] | {"precision": "bf16"}}
    raw |= {"tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"}, "storage": {"path": str(tmp_path / "results")}}
    (tmp_path / "bf16.yaml").write_text(yaml.safe_dump(raw))
    for key, value in AVX2_ONLY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    done = run_cli("tune", "bf16.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "NO_RAY" in done.stderr.splitlines()  # refused before Ray was imported
    lines = [line for line in done.stderr.splitlines() if line not in ("NO_RAY", "RAY_IMPORTED")]
    assert len(lines) == 1 and lines[0].startswith("error: train.precision: bf16 cannot train a lstm on this cpu")
    assert not (tmp_path / "results").exists()  # no trial ran


def test_cells_that_still_run_at_avx2_are_not_refused(avx2_cpu):
    assert avx2_cpu["problems"]["gru"] == "" and avx2_cpu["problems"]["rnn"] == ""
    assert avx2_cpu["bf16_gru"] == ""


def test_a_cell_the_search_space_can_pick_is_probed_too(avx2_cpu):
    assert avx2_cpu["searched_lstm"].startswith("error: train.precision: bf16 cannot train a lstm")


def test_the_probe_runs_once_per_process_and_leaves_the_random_state_alone():
    precision_problem.cache_clear()
    state = torch.get_rng_state()
    first = precision_problem("bf16", "lstm", "cpu")
    assert precision_problem("bf16", "lstm", "cpu") == first
    assert precision_problem.cache_info().misses == 1 and precision_problem.cache_info().hits == 1
    assert torch.equal(torch.get_rng_state(), state)


def test_fp32_is_never_probed():
    precision_problem.cache_clear()
    assert precision_problem("fp32", "lstm", "cpu") == ""


def test_a_trial_that_asks_for_no_gpu_trains_on_the_cpu(tiny_raw):
    assert trial_device(parse_config(tiny_raw)) == CPU


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    others=st.lists(st.sampled_from(["fp32", "bf16"]), max_size=2, unique=True),
    fp16_in=st.sampled_from(["base", "space", "both"]),
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
)
def test_fp16_anywhere_in_a_cpu_sweep_is_refused_naming_train_precision(tiny_raw, others, fp16_in, cell):
    base = "fp16" if fp16_in in ("base", "both") else (others or ["fp32"])[0]
    searched = others + (["fp16"] if fp16_in in ("space", "both") else [])
    raw = tiny_raw | {"train": tiny_raw["train"] | {"precision": base}, "model": tiny_raw["model"] | {"cell": cell}}
    if searched:
        raw["search"] = raw["search"] | {"space": {"train.precision": {"choice": searched}}}
    with pytest.raises(ConfigError) as refused:
        check_precision(parse_config(raw), CPU)
    assert refused.value.key == "train.precision"
    assert "fp16 needs a GPU" in refused.value.message and "resources.gpu" in refused.value.message
