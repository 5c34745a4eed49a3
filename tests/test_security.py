"""Security: nothing lstm-ray loads can run code, no name from a config or MLflow writes outside its folder, and
the cluster files keep Ray and its dashboard private.

    scripts/loopback-only .venv/bin/python -m pytest tests/test_security.py -q -p no:cacheprovider

Each refusal test first shows its trap is live (unpickled or parsed unsafely, it does run code), then that
lstm-ray's own loaders refuse it. Token authentication on every `ray start` and KubeRay container, dashboards
bound to 127.0.0.1 (or the pod IP, for RayJob heads), no all-interfaces bind and no literal secrets are checked
in tests/cluster/test_cluster_configs.py; the cluster tests here add what reaches those servers from outside.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lstm_ray import cli
from lstm_ray.config import ConfigError, parse_config
from lstm_ray.reports.page import _folder_part
from lstm_ray.storage import INFO_FILE, save_resume_info

PACKAGE = REPO / "lstm_ray"
CLUSTER = REPO / "cluster"


class CodeRunner:
    """Unpickling this calls os.mkdir(path): a booby-trapped file could run anything in its place."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


class TrappedModule(torch.nn.Module):
    """A network whose pickled form carries a CodeRunner, as a malicious MLflow PyTorch model could."""

    def __init__(self, marker: Path):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)
        self.trap = CodeRunner(marker)


def trapped_state(marker: Path) -> dict:
    """A checkpoint-shaped dict (model weights and args) with a CodeRunner among the weights."""
    return {"model": {"linear.weight": CodeRunner(marker)}, "model_args": {"n_inputs": 1}, "lookback": 4}


def calls(path: Path) -> list[tuple[str, ast.Call]]:
    """(dotted callee, call) for every call in a module, e.g. ('torch.load', ...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            found.append((ast.unparse(node.func), node))
    return found


# --- loading: weights only, safe YAML ------------------------------------------------------------------------


def test_every_torch_load_in_lstm_ray_passes_weights_only_true():
    loads = [(path, call) for path in PACKAGE.rglob("*.py") for name, call in calls(path) if name == "torch.load"]
    assert len(loads) >= 4  # checkpoints (trainable, transfer) and network.pt (serving, twice)
    for path, call in loads:
        flag = {k.arg: k.value for k in call.keywords}.get("weights_only")
        assert isinstance(flag, ast.Constant) and flag.value is True, f"{path.name}:{call.lineno}: {ast.unparse(call)}"


def test_lstm_ray_never_unpickles_or_parses_yaml_unsafely():
    unsafe = {"pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads"}
    unsafe |= {"marshal.loads", "torch.jit.load", "eval", "exec", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"}
    found = [(p.name, c.lineno, n) for p in PACKAGE.rglob("*.py") for n, c in calls(p) if n in unsafe]
    assert found == []
    yaml_loads = [(p.relative_to(PACKAGE), c) for p in PACKAGE.rglob("*.py") for n, c in calls(p) if n == "yaml.load"]
    for name, call in yaml_loads:  # only through the config's safe loader
        loader = {k.arg: ast.unparse(k.value) for k in call.keywords}.get("Loader")
        assert name.parts[0] == "config" and loader == "_StrictLoader", f"{name}:{call.lineno}"
    from lstm_ray.config import _StrictLoader

    assert issubclass(_StrictLoader, yaml.SafeLoader)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    from ray import tune

    from lstm_ray.sweep.trainable import CHECKPOINT_FILE, load_checkpoint_state
    from lstm_ray.train.transfer import load_source

    marker = tmp_path / "code-ran"
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    torch.save(trapped_state(marker), folder / CHECKPOINT_FILE)
    torch.load(folder / CHECKPOINT_FILE, weights_only=False)  # the trap is live: plain unpickling runs it
    assert marker.is_dir()
    marker.rmdir()
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint_state(tune.Checkpoint.from_directory(str(folder)))  # resuming a trial
    with pytest.raises(ConfigError, match="model.init_from: .* does not load as weights only"):
        load_source(str(folder))  # model.init_from: a checkpoint folder
    assert not marker.exists()


def logged_raw_row_model(cfg, tmp_path: Path) -> tuple[str, str, str, Path]:
    """A sweep's kind of model (an untrained network) logged to a SQLite MLflow store under `tmp_path`:
    (tracking uri, run id, model uri, staging folder)."""
    from lstm_ray.data.dataset import prepare_dataset
    from lstm_ray.tracking.serving import log_serving_model, raw_example, stage_serving_model
    from lstm_ray.train.models import build_model

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("security", artifact_location=str(tmp_path / "artifacts")))
    data = prepare_dataset(cfg.data)
    state, lookback = data.preprocessing_state(), cfg.data.lookback
    network = build_model(cfg.model, len(data.input_index), len(data.target_index), cfg.data.horizon)
    example = raw_example(cfg.data.source, state, lookback)
    staged = stage_serving_model(tmp_path / "staged", network, example, state, lookback)
    mlflow.set_tracking_uri(uri)
    return uri, run.info.run_id, log_serving_model(uri, run.info.run_id, str(staged), None), staged


def test_a_network_file_that_would_run_code_is_refused_when_logging_and_loading(tiny_config, tmp_path):
    from lstm_ray.tracking.serving import NETWORK_FILE, log_serving_model
    from lstm_ray.train.transfer import load_network

    uri, run_id, model_uri, staged = logged_raw_row_model(tiny_config, tmp_path)
    marker = tmp_path / "code-ran"
    torch.save(trapped_state(marker), staged / NETWORK_FILE)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        log_serving_model(uri, run_id, str(staged), None)  # a tampered staging folder
    (stored,) = (tmp_path / "artifacts").rglob(NETWORK_FILE)
    torch.save(trapped_state(marker), stored)  # a tampered model in the artifact store
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_network(model_uri)  # model.init_from: runs:/... or models:/...
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        mlflow.pyfunc.load_model(model_uri)  # serving the model
    assert not marker.exists()


def test_init_from_an_mlflow_model_reads_its_weights_not_the_wrapper_mlflow_pickled(tiny_config, tmp_path):
    from lstm_ray.train.transfer import load_network

    *_, model_uri, _ = logged_raw_row_model(tiny_config, tmp_path)
    marker = tmp_path / "code-ran"
    (wrapper,) = (tmp_path / "artifacts").rglob("python_model.pkl")
    wrapper.write_bytes(pickle.dumps(CodeRunner(marker)))
    network = load_network(model_uri)
    assert isinstance(network, torch.nn.Module) and not marker.exists()
    with contextlib.suppress(Exception):  # MLflow's own loader unpickles the wrapper: the trap is live
        mlflow.pyfunc.load_model(model_uri)
    assert marker.is_dir()


def test_an_mlflow_pytorch_model_saved_with_pickle_is_refused_as_init_from(tmp_path, monkeypatch):
    import mlflow.pytorch

    from lstm_ray.train.transfer import load_network, load_source

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient(uri).create_experiment("pickled", artifact_location=str(tmp_path / "artifacts"))
    marker = tmp_path / "code-ran"
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.pytorch.log_model(
            TrappedModule(marker), name="model", serialization_format="pickle", pip_requirements=["torch"]
        )
    model_uri = f"runs:/{run.info.run_id}/model"
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    with pytest.raises(MlflowException, match="pickle is disallowed"):
        load_network(model_uri)
    with pytest.raises(ConfigError, match="model.init_from: cannot load"):
        load_source(model_uri, uri)
    assert not marker.exists() and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in os.environ
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # the trap is live where pickle is allowed
    mlflow.pytorch.load_model(model_uri)
    assert marker.is_dir()


def test_a_python_tag_in_a_config_is_an_error_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\ndata: {{source: builtin:co2}}\n"
    config = tmp_path / "evil.yaml"
    config.write_text(text)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lstm-ray")), "validate", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.startswith(f"error: {config}: is not valid YAML at line 1") and len(done.stderr.splitlines()) == 1
    )
    assert "python/object/apply:os.system" in done.stderr and not marker.exists()
    yaml.unsafe_load(text)  # the trap is live for an unsafe loader
    assert marker.exists()


def test_a_python_tag_in_a_set_flag_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    flag = f"name=!!python/object/apply:os.mkdir ['{marker}']"
    assert cli.main(["validate", str(REPO / "configs" / "quickstart.yaml"), "--set", flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: name: ") and "only plain data is read" in err and not marker.exists()


# --- paths: no name leaves its folder -------------------------------------------------------------------------

DANGEROUS_NAMES = ["..", ".", "../x", "../../x", "/tmp/x", "a/../../x", "..\\x", "x/..", "x\0y", "x\ny", "~/x", "$HOME"]


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(DANGEROUS_NAMES) | st.text(min_size=1, max_size=300))
def test_a_sweep_name_cannot_place_its_results_outside_storage(tiny_raw, tmp_path_factory, name):
    storage = tmp_path_factory.mktemp("storage")
    try:
        cfg = parse_config(tiny_raw | {"name": name})
    except ConfigError as err:
        assert err.key == "name"
        return
    folder = f"{cfg.name}-20260101-000000"  # as storage.sweep_folder_name names a sweep's folder
    written = storage / folder / INFO_FILE
    assert written.resolve().is_relative_to(storage.resolve()) and len(Path(folder).parts) == 1
    save_resume_info(str(storage), folder, cfg, "parent-run")
    assert written.is_file()


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b", "s3:bucket", "models:/x"])
def test_a_registered_model_name_cannot_be_a_path(tiny_raw, name):
    with pytest.raises(ConfigError) as err:
        parse_config(tiny_raw | {"tracking": {"register_as": name}})
    assert err.value.key == "tracking.register_as"


@settings(max_examples=200, deadline=None, database=None)
@given(experiment=st.sampled_from(DANGEROUS_NAMES) | st.text(), run_id=st.sampled_from(DANGEROUS_NAMES) | st.text())
def test_report_folders_stay_inside_lstm_ray_reports_for_any_experiment_name(experiment, run_id):
    base = Path("/srv/lstm-ray-reports")
    parts = (_folder_part(experiment), _folder_part(run_id[:8]))
    assert all(part not in ("", ".", "..") and "/" not in part and "\\" not in part for part in parts)
    assert Path(os.path.normpath(base.joinpath(*parts))).is_relative_to(base)


def test_report_of_an_unknown_run_is_an_error_line_and_writes_no_report(tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).create_experiment("../../escaped", artifact_location=str(tmp_path / "artifacts"))
    work = tmp_path / "a" / "b" / "c" / "d"  # deep enough that even an escaping report folder stays in tmp_path
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    capsys.readouterr()  # MLflow's notes on creating the store
    code = cli.main(["report", "../../escaped", "--tracking-uri", uri, "--run", "../../../x", "--storage", "results"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --run: no run '../../../x'") and len(err.splitlines()) == 1
    assert not list(tmp_path.rglob("report.html"))


def test_a_spill_folder_is_one_folder_per_mlflow_run_id(tmp_path):
    from lstm_ray.tracking.outbox import SPILL_FOLDER, spill_folder

    storage = str(tmp_path / "results")
    assert spill_folder(storage, "0123abcd" * 4) == f"{storage}/{SPILL_FOLDER}/{'0123abcd' * 4}"
    for run_id in ("..", "../../x", "/tmp/x", "", "a\\..\\b"):
        with pytest.raises(ValueError, match="not an MLflow run id"):
            spill_folder(storage, run_id)


def test_a_tampered_spill_uploads_nothing_from_outside_its_folder(tmp_path, monkeypatch):
    from lstm_ray.tracking.outbox import SPILL_FILE, Write, replay_spilled, spill_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # replay copies the spill to tmp/<folder>
    (tmp_path / "tmp").mkdir()

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("spilled", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("private")
    folder = Path(spill_folder(str(tmp_path / "results"), run_id))
    (folder / "files" / "0").mkdir(parents=True)
    (folder / "files" / "0" / "spilled.txt").write_text("sent")
    writes = [
        Write("artifacts", None, source="files/0", artifact_path="kept"),
        Write("artifacts", None, source=str(secret), artifact_path="absolute"),
        Write("artifacts", None, source="files/../../../secret", artifact_path="relative"),  # tmp_path/secret
    ]
    state = {"tracking_uri": uri, "experiment_id": experiment, "parent_run_id": run_id, "run_ids": {}}
    (folder / SPILL_FILE).write_text(json.dumps(state | {"writes": [w.to_json() for w in writes]}))
    assert replay_spilled(str(tmp_path / "results"), timeout=60) == [run_id]
    assert [a.path for a in client.list_artifacts(run_id)] == ["kept"]


# --- the cluster files: what reaches Ray and its dashboard from outside ---------------------------------------


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kuberay_objects() -> list[dict]:
    return [doc for path in sorted((CLUSTER / "kuberay").glob("*.yaml")) for doc in documents(path)]


def pod_templates(node) -> list[dict]:
    """Every pod template (metadata + a spec with containers) anywhere inside a KubeRay object."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("spec"), dict) and "containers" in node["spec"]:
            found.append(node)
        for value in node.values():
            found += pod_templates(value)
    elif isinstance(node, list):
        for value in node:
            found += pod_templates(value)
    return found


@pytest.mark.parametrize("path", sorted(CLUSTER.glob("aws*.yaml")), ids=lambda p: p.name)
def test_aws_security_group_opens_only_ssh_and_only_to_one_address(path):
    rules = yaml.safe_load(path.read_text())["provider"]["security_group"]["IpPermissions"]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules] == [("tcp", 22, 22)]
    ranges = [r["CidrIp"] for rule in rules for r in rule["IpRanges"]]
    assert ranges and all(cidr.endswith("/32") and not cidr.startswith("0.0.0.0") for cidr in ranges)


def test_kuberay_exposes_no_ray_port_outside_the_kubernetes_cluster():
    objects = kuberay_objects()
    assert not [o["kind"] for o in objects if o["kind"] in ("Ingress", "Route", "Gateway", "HTTPRoute")]
    services = [o for o in objects if o["kind"] == "Service"]
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services)
    clusters = [o["spec"] for o in objects if o["kind"] == "RayCluster"]
    clusters += [o["spec"]["rayClusterSpec"] for o in objects if o["kind"] == "RayJob"]
    assert len(clusters) == 2
    assert all(c["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP" for c in clusters)
    assert all("hostNetwork" not in t["spec"] and "hostPort" not in str(t) for o in objects for t in pod_templates(o))


def test_the_network_policy_covers_every_ray_pod_and_admits_only_ray_pods_and_the_operator():
    objects = kuberay_objects()
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    templates = [t for o in objects if o["kind"] in ("RayCluster", "RayJob") for t in pod_templates(o)]
    assert len(templates) >= 5  # RayCluster head + workers, RayJob head + workers + submitter
    for template in templates:
        labels = template.get("metadata", {}).get("labels", {})
        assert selected.items() <= labels.items(), f"a pod outside the policy: {labels}"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"]["ingress"]:
        sources = rule["from"]
        assert sources and not [s for s in sources if "ipBlock" in s or s == {}]
        if sources != [{"podSelector": {"matchLabels": selected}}]:  # anyone else: the dashboard port only
            assert rule["ports"] == [{"protocol": "TCP", "port": 8265}]
