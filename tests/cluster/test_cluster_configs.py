"""The files under cluster/: Ray's own launcher validation, KubeRay's required fields, security defaults.

Fast: no cluster, no cloud call. `validate_config(prepare_config(cfg))` is what `ray up` runs before it
touches a cloud (`validate_config` alone rejects any raw YAML for a missing `cluster_synced_files`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "cluster"
LAUNCHER_FILES = sorted(CLUSTER_DIR.glob("*.yaml"))
KUBERAY_FILES = sorted((CLUSTER_DIR / "kuberay").glob("*.yaml"))
ALL_FILES = LAUNCHER_FILES + KUBERAY_FILES
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)


def _name(path: Path) -> str:
    return str(path.relative_to(CLUSTER_DIR))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kind(kind: str) -> dict:
    matches = [doc for path in KUBERAY_FILES for doc in _documents(path) if doc.get("kind") == kind]
    assert len(matches) == 1, f"expected one {kind} under cluster/kuberay, found {len(matches)}"
    return matches[0]


def _ray_validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def _start_commands(config: dict) -> list[str]:
    return [*config["head_start_ray_commands"], *config["worker_start_ray_commands"]]


def _all_commands(config: dict) -> list[str]:
    keys = [
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ]
    return [command for key in keys for command in config.get(key, [])]


def _ray_clusters() -> list[tuple[str, dict]]:
    return [("RayCluster", _kind("RayCluster")["spec"]), ("RayJob", _kind("RayJob")["spec"]["rayClusterSpec"])]


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


def _literal_assignments(text: str) -> list[str]:
    """`NAME=value` with a secret-looking NAME and a value written out (not $VAR, not a path, not *_PATH)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for name, value in re.findall(
            r"([A-Za-z_]*(?:PASSWORD|TOKEN|SECRET)[A-Za-z_]*)\s*=\s*(\S+)", line, flags=re.IGNORECASE
        ):
            value = value.strip("'\"")
            if not (name.upper().endswith("_PATH") or value.startswith(("$", "~/", "/")) or value == ""):
                found.append(f"{name}={value}")
    return found


def literal_secrets(text: str) -> list[str]:
    """Secret values written into a file: env entries with a literal `value`, secret-named keys holding a
    literal, `NAME=value` assignments in commands, pasted tokens (32+ hex digits) and private keys."""
    found = re.findall(r"\b[0-9a-fA-F]{32,}\b", text) + re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY", text)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:  # not YAML (Dockerfile): plain text
        return found + _literal_assignments(text)
    stack: list = documents
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = str(node.get("name", ""))
            if "value" in node and SECRET_NAME.search(name) and not name.upper().endswith("_PATH"):
                found.append(f"{name}: {node['value']}")
            for key, value in node.items():
                literal = isinstance(value, (str, int)) and not str(value).startswith(("$", "~/", "/"))
                if (
                    SECRET_NAME.search(str(key))
                    and literal
                    and key not in ("secretName",)
                    and not str(key).upper().endswith("_PATH")
                ):
                    found.append(f"{key}: {value}")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            found += _literal_assignments(node)
    return found


# --- launcher YAMLs: Ray's own validation -------------------------------------------------------------


def test_launcher_files_are_the_three_targets():
    assert {p.name for p in LAUNCHER_FILES} == {"onprem.yaml", "aws-gpu.yaml", "gcp-gpu.yaml"}


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_launcher_yaml_passes_rays_validation(path):
    _ray_validate(_load(path))


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_validation_rejects_a_typo_key(path):
    import jsonschema

    config = _load(path)
    config["idle_timout_minutes"] = config.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError, match="idle_timout_minutes"):
        _ray_validate(config)


@pytest.mark.parametrize("path", [p for p in LAUNCHER_FILES if p.name != "onprem.yaml"], ids=_name)
def test_validation_rejects_a_typo_in_a_node_type(path):
    import jsonschema

    config = _load(path)
    worker_type = next(t for t in config["available_node_types"] if t != config["head_node_type"])
    config["available_node_types"][worker_type]["min_worker"] = 0
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        _ray_validate(config)


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_validation_rejects_a_wrong_type(path):
    import jsonschema

    config = _load(path)
    config["upscaling_speed"] = "fast"
    with pytest.raises(jsonschema.ValidationError):
        _ray_validate(config)


# --- what each launcher YAML must describe ---------------------------------------------------------------


def test_onprem_uses_the_local_provider_and_nfs_for_checkpoints():
    config = _load(CLUSTER_DIR / "onprem.yaml")
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] and config["provider"]["worker_ips"]
    setup = " ".join(config["setup_commands"])
    assert "mount -t nfs" in setup and "/mnt/lstm-ray" in setup
    assert "--artifacts-destination /mnt/lstm-ray/" in " ".join(config["head_start_ray_commands"])


@pytest.mark.parametrize(("file", "bucket"), [("aws-gpu.yaml", "s3://"), ("gcp-gpu.yaml", "gs://")])
def test_cloud_gpu_types_scale_from_zero_with_a_lower_priority_on_demand_fallback(file, bucket):
    config = _load(CLUSTER_DIR / file)
    head = config["head_node_type"]
    assert config["available_node_types"][head]["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    workers = {n: t for n, t in config["available_node_types"].items() if n != head}
    assert all(t["resources"]["GPU"] >= 1 and t["min_workers"] == 0 and t["max_workers"] >= 1 for t in workers.values())
    spot = [t for t in workers.values() if "spot" in yaml.safe_dump(t["node_config"]).lower()]
    on_demand = [t for t in workers.values() if t not in spot]
    assert spot and on_demand
    assert min(t["priority"] for t in spot) > min(t["priority"] for t in on_demand)
    assert any(t["resources"] == s["resources"] for t in on_demand for s in spot), "a same-shape fallback"
    assert f"--artifacts-destination {bucket}" in " ".join(config["head_start_ray_commands"])


def test_aws_offers_g5_and_p4d_and_gcp_offers_t4_and_a100():
    aws = yaml.safe_dump(_load(CLUSTER_DIR / "aws-gpu.yaml")["available_node_types"])
    gcp = yaml.safe_dump(_load(CLUSTER_DIR / "gcp-gpu.yaml")["available_node_types"])
    assert all(t in aws for t in ("g5.xlarge", "g5.12xlarge", "p4d.24xlarge"))
    assert all(t in gcp for t in ("nvidia-tesla-t4", "a2-highgpu-1g"))


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_setup_installs_a_pinned_release(path):
    commands = " ".join(_all_commands(_load(path)))
    assert '"lstm-ray==0.1.0"' in commands
    assert re.search(r'"torch==\d+\.\d+\.\d+"', commands)


def test_kuberay_image_pins_ray_and_the_release():
    dockerfile = (CLUSTER_DIR / "kuberay" / "Dockerfile").read_text()
    assert re.search(r"^FROM rayproject/ray:2\.60\.0-", dockerfile, flags=re.MULTILINE)
    assert '"lstm-ray==0.1.0"' in dockerfile and '"mlflow[auth]==3.17.2"' in dockerfile


# --- KubeRay manifests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "spec"), _ray_clusters(), ids=["RayCluster", "RayJob"])
def test_kuberay_cluster_has_the_fields_kuberay_requires(kind, spec):
    assert spec["enableInTreeAutoscaling"] is True
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] == 0 and group["replicas"] == 0 and group["maxReplicas"] >= 1
        ray_container = group["template"]["spec"]["containers"][0]
        assert ray_container["resources"]["requests"]["nvidia.com/gpu"] >= 1
        assert (
            ray_container["resources"]["limits"]["nvidia.com/gpu"]
            == ray_container["resources"]["requests"]["nvidia.com/gpu"]
        )
    assert all(c.get("image") and c.get("name") for c in _containers(spec))


def test_kuberay_objects_use_the_v1_api():
    assert _kind("RayCluster")["apiVersion"] == "ray.io/v1"
    assert _kind("RayJob")["apiVersion"] == "ray.io/v1"


def test_rayjob_runs_lstm_ray_tune_on_the_cluster():
    spec = _kind("RayJob")["spec"]
    assert re.match(r"lstm-ray tune configs/\S+\.yaml --address auto\b", spec["entrypoint"])
    assert spec["rayClusterSpec"] and spec["shutdownAfterJobFinishes"] is True


def test_kuberay_references_only_objects_that_exist():
    shared = {(d["kind"], d["metadata"]["name"]) for d in _documents(CLUSTER_DIR / "kuberay" / "shared.yaml")}
    for _, spec in _ray_clusters():
        pod_specs = [g["template"]["spec"] for g in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]]
        for pod in pod_specs:
            assert ("ServiceAccount", pod["serviceAccountName"]) in shared
            for volume in pod.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in shared
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in shared


# --- security defaults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_every_ray_start_runs_with_token_auth(path):
    config = _load(path)
    starts = [c for c in _start_commands(config) if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert re.search(r"RAY_AUTH_MODE=token\s+ray start", command), command
    env_script = " ".join(config["setup_commands"])
    assert "export RAY_AUTH_MODE=token" in env_script and "RAY_AUTH_TOKEN_PATH=" in env_script


@pytest.mark.parametrize(("kind", "spec"), _ray_clusters(), ids=["RayCluster", "RayJob"])
def test_every_kuberay_ray_container_uses_token_auth_from_a_secret(kind, spec):
    assert spec["authOptions"] == {"mode": "token", "secretName": "lstm-ray-auth"}
    ray_containers = [c for c in _containers(spec) if c["name"].startswith("ray-")]
    assert len(ray_containers) == 1 + len(spec["workerGroupSpecs"])
    for container in ray_containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "lstm-ray-auth"


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_launcher_dashboard_binds_loopback_only(path):
    head_start = " ".join(_load(path)["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


def test_kuberay_dashboard_binds_loopback_or_the_pod_ip_never_all_interfaces():
    assert _kind("RayCluster")["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    # The operator polls RayJob status through the head Service, so a RayJob head listens on its pod IP.
    job_spec = _kind("RayJob")["spec"]["rayClusterSpec"]
    assert job_spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "$(POD_IP)"
    head_env = {e["name"]: e for e in job_spec["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert head_env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


@pytest.mark.parametrize("path", ALL_FILES, ids=_name)
def test_no_server_binds_all_interfaces(path):
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"0\.0\.0\.0|--(dashboard-)?host[= ]::|dashboard-host: \"?::", code)


def _mlflow_commands() -> list[tuple[str, str]]:
    commands = [
        (p.name, c) for p in LAUNCHER_FILES for c in _load(p)["head_start_ray_commands"] if "mlflow server" in c
    ]
    for kind, spec in _ray_clusters():
        for container in _containers(spec):
            if container.get("command", [])[:2] == ["mlflow", "server"]:
                env = " ".join(f"{e['name']}={e.get('value', '')}" for e in container["env"])
                commands.append((kind, env + " " + " ".join(container["command"])))
    return commands


def test_every_target_runs_one_mlflow_server():
    assert sorted(name for name, _ in _mlflow_commands()) == [
        "RayCluster",
        "RayJob",
        "aws-gpu.yaml",
        "gcp-gpu.yaml",
        "onprem.yaml",
    ]


@pytest.mark.parametrize(("where", "command"), _mlflow_commands(), ids=lambda x: x if len(x) < 20 else "")
def test_mlflow_server_has_auth_host_check_proxied_artifacts_and_no_job_runner(where, command):
    assert re.search(r"--app-name[= ]basic-auth", command)
    assert re.search(r"--allowed-hosts[= ]\"?localhost:5000,127\.0\.0\.1:5000", command)
    assert re.search(r"--host[= ]127\.0\.0\.1\b", command)
    assert "--serve-artifacts" in command and "--artifacts-destination" in command
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in command
    assert re.search(r"--backend-store-uri[= ]\"?(\$\{MLFLOW_BACKEND_STORE_URI:-)?(sqlite|postgresql)", command)


def test_mlflow_admin_password_comes_only_from_the_environment():
    for path in LAUNCHER_FILES:
        text = path.read_text()
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" in text and "admin_password" not in text
    config_map = _kind("ConfigMap")["data"]["basic_auth.ini"]
    assert "admin_password" not in config_map
    for _, spec in _ray_clusters():
        mlflow = next(c for c in _containers(spec) if c["name"] == "mlflow")
        password = next(e for e in mlflow["env"] if e["name"] == "MLFLOW_AUTH_ADMIN_PASSWORD")
        assert "value" not in password and password["valueFrom"]["secretKeyRef"]["name"] == "lstm-ray-mlflow"


@pytest.mark.parametrize("path", [*ALL_FILES, CLUSTER_DIR / "kuberay" / "Dockerfile"], ids=_name)
def test_no_literal_secrets(path):
    assert literal_secrets(path.read_text()) == []


@pytest.mark.parametrize(("kind", "spec"), _ray_clusters(), ids=["RayCluster", "RayJob"])
def test_kuberay_secret_like_env_vars_come_from_secrets(kind, spec):
    for container in _containers(spec):
        for env in container.get("env", []):
            if SECRET_NAME.search(env["name"]) and not env["name"].endswith("_PATH"):
                assert "value" not in env and "secretKeyRef" in env["valueFrom"], (container["name"], env)


@pytest.mark.parametrize(
    "planted",
    [
        "MLFLOW_AUTH_ADMIN_PASSWORD=correct-horse-battery",
        "  - {name: RAY_AUTH_TOKEN, value: s3cr3t-token-value}",
        "export RAY_AUTH_TOKEN=" + "ab" * 32,
    ],
)
def test_the_secret_check_catches_a_planted_secret(planted):
    assert literal_secrets(planted)


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=_name)
def test_workers_do_not_keep_the_mlflow_password(path):
    assert any("rm -f ~/.lstm-ray/secrets/mlflow.env" in c for c in _load(path)["worker_setup_commands"])


# --- house style: a comment above every key ----------------------------------------------------------------


def uncommented_keys(text: str) -> list[str]:
    """Block-style mapping keys whose previous non-blank line is not a comment ("line: key")."""
    lines = text.splitlines()
    missing = []
    for document in yaml.compose_all(text):
        stack = [document]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if not node.flow_style:
                        row = previous = key.start_mark.line
                        previous -= 1
                        while previous >= 0 and not lines[previous].strip():
                            previous -= 1
                        if previous < 0 or not lines[previous].lstrip().startswith("#"):
                            missing.append(f"{row + 1}: {key.value}")
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
    return missing


@pytest.mark.parametrize("path", ALL_FILES, ids=_name)
def test_every_key_has_a_comment_above_it(path):
    assert uncommented_keys(path.read_text()) == []


def test_the_comment_check_catches_a_bare_key():
    assert uncommented_keys("# the name\nname: x\nbare: 1\n") == ["3: bare"]
