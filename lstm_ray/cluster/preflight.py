"""Check a cluster before a sweep spends money on it: config and data, resources, storage, MLflow.

    lstm-ray preflight configs/cluster-gpu.yaml --address http://HEAD:8265   # runs on the head as a Ray job
    lstm-ray preflight configs/cluster-gpu.yaml --address auto               # on a cluster node

Prints one line per check, `OK` or `FAIL` with what to fix; the command exits 0 when every check passes, 1 when
one fails and 2 for bad input. The checks run where the sweep would: the config and its data on the driver
(with a dashboard address, a Ray job on the head, like `lstm-ray submit`); storage from every live node a trial
fits on; MLflow from the driver, which writes every run, and also from those nodes when trials load
`model.init_from` from MLflow.

- resources: one trial's {CPU: resources.cpu, GPU: resources.gpu, memory_mb: resources.memory_mb} fits a live node
  or a node type the autoscaler can add (`sweep/capacity.py`).
- versions: every live node runs the driver's lstm-ray, torch (release), Ray and Python (major.minor)
  (`node_software.py`).
- cuda: when trials ask for GPUs, the torch of the nodes a trial fits on sees CUDA from a task holding a GPU there.
- precision: the nodes a trial fits on can train `train.precision` with each configured cell type, tried there
  with a tiny model (`train/precision_probe.py`): bf16 needs a GPU or a CPU with AVX-512 bf16, fp16 a GPU. No
  line for fp32, which runs anywhere.
- storage: `storage.path` is writable from those nodes and is the same storage the driver sees (a local disk on
  each node is not: Tune writes checkpoints where the trial runs and reads them on the driver).
- mlflow: the tracking store answers within `timeout_s` (a SQLite store: its folder exists and is writable).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstm_ray.cluster.node_software import asks_for_gpus, cuda_report, cuda_verdict, software_versions, versions_verdict
from lstm_ray.config import ExperimentConfig, load_config
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.redaction import redact
from lstm_ray.search.cost import sweep_cost_lines
from lstm_ray.storage import as_uri
from lstm_ray.sweep.capacity import UNLIMITED, NodeType, fits, node_types, planning_config, trial_demand
from lstm_ray.sweep.gpu_packing import gpu_share_verdict

__all__ = ["Check", "check_mlflow_uri", "check_precision", "check_resources", "preflight", "run_checks"]

PROBE_FOLDER = ".lstm-ray-preflight"  # under storage.path; removed after the check


@dataclass
class Check:
    name: str
    ok: bool
    detail: str  # what was found; for a failure, also what to fix

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class Waits:
    answer_s: float  # a probe on a live node answers within this
    new_node_s: float  # the autoscaler starts a node a trial fits on within this


def preflight(
    config: str,
    overrides: list[str],
    address: str | None,
    echo: Callable[[str], None],
    *,
    timeout_s: float = 20.0,
    node_wait_s: float = 600.0,
) -> int:
    """Run every check and `echo` one line each; returns the exit code (0 all passed, 1 a check failed, 2 bad
    input). With an http(s) dashboard address, the checks run on the head as a Ray job whose log is echoed.

    Probes answer within `timeout_s`; when no live node fits a trial, they wait up to `node_wait_s` for the
    autoscaler to start one, as the sweep would. ConfigError (exit 2) for a bad config or data.
    """
    if address and address.startswith(("http://", "https://")):
        from lstm_ray.cluster import jobs

        waits = ("--timeout", f"{timeout_s:g}", "--node-wait", f"{node_wait_s:g}")
        job = jobs.submit(config, overrides, address, command="preflight", extra_args=waits)
        return jobs.follow(job.address, job.job_id, lambda line: _echo_check(line, echo), summary=False)
    checks = run_checks(config, overrides, address, echo, Waits(timeout_s, node_wait_s))
    return 0 if all(c.ok for c in checks) else 1


def run_checks(
    config: str, overrides: list[str], address: str | None, echo: Callable[[str], None], waits: Waits
) -> list[Check]:
    """The checks, run from this process as the sweep's driver; ConfigError for a bad config or data."""
    from lstm_ray.data.dataset import prepare_sweep_data

    cfg = load_config(config, overrides)
    data = prepare_sweep_data(cfg)
    summary = data.report()[0]
    checks = [
        Check("config", True, f"{cfg.name}: {redact(cfg.data.source)}, {summary}, {cfg.search.num_samples} trials")
    ]
    echo(checks[0].line())
    for line in sweep_cost_lines(cfg, data):  # search.budget / search.prices: the estimate `validate` prints
        echo(f"  {line}")
    import ray
    from ray._private.state import state

    ray.init(address=address or "auto", logging_level="ERROR", log_to_driver=False)
    try:
        leaving = state.get_draining_nodes()  # idle nodes the autoscaler is removing: no place for a trial or probe
        nodes = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] not in leaving]
        checks.append(check_resources(cfg, nodes, node_types(nodes)))
        echo(checks[-1].line())
        trial_fits = checks[-1].ok
        if cfg.resources.gpu == "auto":
            checks.append(Check("gpu memory", *gpu_share_verdict(cfg, data)))
            echo(checks[-1].line())
            cfg = planning_config(cfg)  # the probes below hold a GPU share as a trial does: the smallest
        checks.append(check_versions(cfg, nodes, waits))  # first: other Ray versions also break the probes below
        echo(checks[-1].line())
        targets = probe_targets(cfg, nodes, trial_fits=trial_fits)
        if asks_for_gpus(cfg.resources.gpu):
            cuda = on_nodes(cfg, targets, cuda_report, lambda _: (), waits, gpu=True) if trial_fits else {}
            checks.append(Check("cuda", *cuda_verdict(cuda)))
            echo(checks[-1].line())
        if precisions(cfg) != {"fp32"}:  # fp32 runs anywhere: nothing to try
            checks.append(check_precision(cfg, targets, waits) if trial_fits else UNTRIED_PRECISION)
            echo(checks[-1].line())
        for check in (check_storage, check_mlflow):
            checks.append(check(cfg, targets, waits))
            echo(checks[-1].line())
    finally:
        ray.shutdown()
    return checks


# --- resources -----------------------------------------------------------------------------------------


def check_resources(cfg: ExperimentConfig, nodes: list[dict], types: list[NodeType]) -> Check:
    """Whether a trial fits a live node (`ray.nodes()` entries) or a node type the autoscaler can add."""
    demand = trial_demand(cfg)
    wanted = _resources_text(demand)
    live = [n for n in nodes if fits(demand, n["Resources"])]
    if live:
        return Check("resources", True, f"a trial's {wanted} fits {len(live)} of {len(nodes)} live nodes")
    scalable = [t for t in types if t.max_workers != 0 and (not t.resources or fits(demand, t.resources))]
    if scalable:
        named = ", ".join(
            f"{t.name} ({'no limit' if t.max_workers == UNLIMITED else f'up to {t.max_workers}'}"
            f"{'' if t.resources else '; resources set at launch, not checked'})"
            for t in scalable
        )
        return Check("resources", True, f"a trial's {wanted} fits no live node; the autoscaler can add {named}")
    keys = ["CPU", "GPU", *(["memory"] if "memory" in demand else [])]
    biggest = {key: max((n["Resources"].get(key, 0.0) for n in nodes), default=0.0) for key in keys}
    known = "; ".join(f"{t.name} {_resources_text(t.resources)}" for t in types) or "none found"
    return Check(
        "resources",
        False,
        f"no live node or autoscaler node type fits a trial's {wanted}: the largest live node has "
        f"{_resources_text(biggest)}, node types: {known}. Lower resources.cpu / resources.gpu / resources.memory_mb, "
        "or add nodes or "
        "a node type that large to the cluster config",
    )


def check_versions(cfg: ExperimentConfig, nodes: list[dict], waits: Waits) -> Check:
    """The driver's lstm-ray, torch, Ray and Python against a probe's on every live node."""
    answers = on_nodes(cfg, [n["NodeID"] for n in nodes], software_versions, lambda _: (), waits)
    return Check("versions", *versions_verdict(software_versions(), answers))


# --- precision ---------------------------------------------------------------------------------------

UNTRIED_PRECISION = Check("precision", False, "not tried: no node a trial fits on (see resources)")


def check_precision(cfg: ExperimentConfig, targets: list[str] | None, waits: Waits) -> Check:
    """The nodes a trial fits on can train the configured precisions: a tiny model tried on each (on a GPU the
    probe takes, for GPU trials)."""
    answers = on_nodes(cfg, targets, precision_probe, lambda _: (cfg,), waits, gpu=cfg.resources.gpu > 0)
    failed = {name: error for name, error in answers.items() if error}
    wanted = "/".join(sorted(precisions(cfg)))
    if failed:
        problems = "; ".join(f"node {name}: {error}" for name, error in sorted(failed.items()))
        return Check("precision", False, f"{wanted} cannot run where trials run: {problems}")
    return Check("precision", True, f"{wanted} trains on {len(answers)} node(s)")


def precisions(cfg: ExperimentConfig) -> set[str]:
    """train.precision and every value its search-space dimension can give a trial."""
    searched = cfg.parsed_space().get("train.precision")
    return {cfg.train.precision, *(searched.representative_values() if searched else ())}


def precision_probe(cfg: ExperimentConfig) -> str:
    """On a node: "" when its device for a trial of `cfg` trains the configured precision, else the problem and
    its fix (`train/precision_probe.py`)."""
    from lstm_ray.train.precision_probe import check_precision as check_here

    try:
        check_here(cfg)
    except ConfigError as err:
        return str(err)
    return ""


# --- storage -------------------------------------------------------------------------------------------


def check_storage(cfg: ExperimentConfig, targets: list[str] | None, waits: Waits) -> Check:
    """Write a marker from the driver, have every node a trial fits on read it and write its own, read those back."""
    target = as_uri(cfg.storage.path)
    folder = f"{target.rstrip('/')}/{PROBE_FOLDER}/{secrets.token_hex(4)}"
    token = secrets.token_hex(8)
    error = _write_marker(folder, "driver", token)
    if error:
        return Check("storage", False, f"cannot write {target} from the driver: {error}; check the path and rights")
    try:
        answers = on_nodes(cfg, targets, storage_probe, lambda name: (folder, token, name), waits)
        failed = {name: error for name, error in answers.items() if error}
        for name in set(answers) - set(failed):
            if _read_marker(folder, f"node-{name}") != token:
                failed[name] = "its file is not visible to the driver (a disk of its own?)"
    finally:
        _remove(folder)
    if failed:
        problems = "; ".join(f"node {name}: {error}" for name, error in sorted(failed.items()))
        return Check(
            "storage",
            False,
            f"{target} is not storage the driver and the trial nodes share: {problems}; use storage every node "
            "mounts at the same path (NFS) or s3:// / gs://",
        )
    return Check("storage", True, f"{target} is writable and shared by the driver and {len(answers)} node(s)")


def storage_probe(folder: str, token: str, name: str) -> str:
    """On a node: "" if the driver's marker is readable and this node's own (`node-NAME`) could be written,
    else the error."""
    if _read_marker(folder, "driver") != token:
        return f"cannot see the driver's file in {folder}"
    return _write_marker(folder, f"node-{name}", token)


def _write_marker(folder: str, name: str, token: str) -> str:
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(folder)
        filesystem.create_dir(path, recursive=True)
        with filesystem.open_output_stream(f"{path}/{name}") as out:
            out.write(token.encode())
    except Exception as err:  # any filesystem's error (permissions, credentials, no such bucket) is the answer
        return one_line(err)
    return ""


def _read_marker(folder: str, name: str) -> str:
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(folder)
        with filesystem.open_input_stream(f"{path}/{name}") as stream:
            return stream.read().decode()
    except Exception:  # not there, not readable: the caller reports what that means
        return ""


def _remove(folder: str) -> None:
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(folder)
        filesystem.delete_dir(path)
    except Exception:  # leaving a few bytes behind is no reason to fail the check
        pass


# --- MLflow --------------------------------------------------------------------------------------------


def check_mlflow(cfg: ExperimentConfig, targets: list[str] | None, waits: Waits) -> Check:
    """The tracking store answers the driver, and the trial nodes too when trials load model.init_from from it."""
    uri = cfg.tracking.uri
    failed = {"the driver": error} if (error := check_mlflow_uri(uri, waits.answer_s)) else {}
    from_trials = (cfg.model.init_from or "").startswith(("runs:/", "models:/"))
    if from_trials:
        answers = on_nodes(cfg, targets, check_mlflow_uri, lambda _: (uri, waits.answer_s), waits)
        failed |= {f"node {name}": error for name, error in answers.items() if error}
    if failed:
        problems = "; ".join(f"from {where}: {error}" for where, error in failed.items())
        return Check(
            "mlflow",
            False,
            f"cannot reach {redact(uri)} {problems}. Start the server (scripts/mlflow_server.py) or set tracking.uri "
            "to one the head reaches; credentials go in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD",
        )
    return Check("mlflow", True, f"{redact(uri)} answers the driver" + (" and the trial nodes" if from_trials else ""))


def check_mlflow_uri(uri: str, timeout_s: float) -> str:
    """ "" if the MLflow tracking store at `uri` answers within `timeout_s`, else why not. A SQLite store is
    checked as a file (exists and writable, or its folder does), so the check never creates one."""
    from lstm_ray.cluster.jobs import local_store

    store = local_store(uri) if uri.startswith("sqlite:///") else None
    if store is not None:
        path = Path(store).resolve()
        if path.exists():
            return "" if os.access(path, os.W_OK) else f"{path} is not writable"
        folder = path.parent
        return "" if folder.is_dir() and os.access(folder, os.W_OK) else f"folder {folder} is missing or read-only"
    from lstm_ray.tracking.runs import why_unreachable  # MLflow only for a server

    return why_unreachable(uri, timeout_s)


# --- where trials run ----------------------------------------------------------------------------------


def probe_targets(cfg: ExperimentConfig, nodes: list[dict], trial_fits: bool) -> list[str] | None:
    """Ids of the live nodes to probe from: those a trial fits on (the head only when no other fits, as Ray
    prefers). None when none fits but the autoscaler can add one: probe where it does. When nothing can ever fit
    a trial (the resources check failed), every live node but the head, or the head, so storage and MLflow are
    still checked."""
    demand = trial_demand(cfg)
    fitting = [n for n in nodes if fits(demand, n["Resources"])] if trial_fits else nodes
    workers = [n for n in fitting if "node:__internal_head__" not in n["Resources"]]
    if not fitting and trial_fits:
        return None
    return [n["NodeID"] for n in workers or fitting]


NEW_NODE = "new"  # the name of a probe that waited for the autoscaler to start its node


def on_nodes(
    cfg: ExperimentConfig,
    targets: list[str] | None,
    probe: Callable[..., Any],
    args: Callable[[str], tuple],
    waits: Waits,
    gpu: bool = False,
) -> dict[str, Any]:
    """Run `probe(*args(name))` as a Ray task on each target node (name: the node id's first 8 characters), or
    with targets None once wherever a trial's resources are, waiting for the autoscaler to start that node.
    With `gpu`, a probe on a target node takes one of its GPUs (up to resources.gpu), so it sees one as a trial
    does. Returns each probe's answer: "" for fine (or its report), else the problem."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(probe)
    if targets is None:
        demand = {"num_cpus": cfg.resources.cpu, "num_gpus": cfg.resources.gpu}
        return _answers({NEW_NODE: task.options(**demand).remote(*args(NEW_NODE))}, waits.new_node_s)
    refs = {}
    for node in targets:
        on_node = NodeAffinitySchedulingStrategy(node, soft=False)
        pinned = task.options(
            num_cpus=0, num_gpus=min(cfg.resources.gpu, 1.0) if gpu else 0, scheduling_strategy=on_node
        )
        refs[node[:8]] = pinned.remote(*args(node[:8]))
    return _answers(refs, waits.answer_s)


def _answers(refs: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Each probe's answer ("" for fine), or that it did not answer in time."""
    import ray
    from ray.exceptions import NodeDiedError, TaskUnschedulableError, WorkerCrashedError

    done, late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    for ref in late:
        ray.cancel(ref, force=True)
    by_ref = {ref: name for name, ref in refs.items()}
    answers = {by_ref[ref]: f"no answer within {timeout_s:g} s" for ref in late}
    for ref in done:
        try:
            answers[by_ref[ref]] = ray.get(ref)
        except (NodeDiedError, TaskUnschedulableError, WorkerCrashedError):
            answers[by_ref[ref]] = "the node went away during the check (scaled down or lost); run preflight again"
        except Exception as err:  # the probe itself failed there (e.g. lstm_ray not installed on that node)
            answers[by_ref[ref]] = one_line(err)
    return answers


def _resources_text(resources: dict[str, float]) -> str:
    mb = {"memory_mb": resources["memory"] / 2**20} if "memory" in resources else {}
    shown = {k: int(v) if float(v).is_integer() else v for k, v in resources.items() if k in ("CPU", "GPU")}
    shown |= {k: round(v) for k, v in mb.items()}
    return json.dumps(shown).replace('"', "")


def _echo_check(line: str, echo: Callable[[str], None]) -> None:
    """Echo the job's lines but Ray's own ("Runtime env is setting up", the entrypoint), so the job prints like
    the local command."""
    if not line.startswith("Running entrypoint for job") and "job_manager.py:" not in line:
        echo(line)
