"""Start and stop a multi-node Ray cluster on this one machine, for development and tests.

    python scripts/local_cluster.py start --workers 2 --gpus-per-worker 2 --cpus-per-worker 1 --state-dir /tmp/lc
    eval "$(python scripts/local_cluster.py env --state-dir /tmp/lc)"   # RAY_ADDRESS, token, loopback
    lstm-ray tune configs/quickstart.yaml                                 # runs on the local cluster
    python scripts/local_cluster.py stop-node --state-dir /tmp/lc --worker 1   # simulate losing worker 1
    python scripts/local_cluster.py add-node --state-dir /tmp/lc --cpus 1      # a new worker joins
    python scripts/local_cluster.py stop --state-dir /tmp/lc
    python scripts/local_cluster.py start --autoscaling --workers 0 --gpus-per-worker 2 --state-dir /tmp/lc

Every node is one `ray start --block` in its own session (`setsid`): the recorded PID is the session id of
every process of that node (raylet, agents, and the core workers, which put themselves in process groups of
their own but stay in the session), so stopping a node kills exactly its session. Nodes the fake
autoscaler adds are started by the head's monitor process and live in the head's session.

Every server binds 127.0.0.1 only. Ray rewrites 127.0.0.1 to the machine's routable address unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which in turn makes `ray start --address` refuse to start a worker; so
each node runs `ray start` through `_ray-start` below, which pins the node address to 127.0.0.1 in that
process and sets the variable for its children. Clients need the same variable (see `ClusterHandle.client_env`).

Linux only (reads /proc). The module is importable: `start_cluster`, `stop_cluster`, `kill_worker`,
`add_worker`, `load_cluster`, `alive_nodes`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "ClusterHandle",
    "NodeRecord",
    "start_cluster",
    "stop_cluster",
    "kill_worker",
    "add_worker",
    "load_cluster",
    "alive_nodes",
]

STATE_FILE = "cluster.json"
LOOPBACK = "127.0.0.1"
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default --min/--max-worker-port: keep our servers out of it
MAX_TEMP_ROOT = 40  # Ray's AF_UNIX socket paths (temp dir + ~61 chars) must stay under 108 bytes
LAUNCHER_LIST_KEYS = (
    "cluster_synced_files",
    "rsync_exclude",
    "rsync_filter",
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


@dataclass
class NodeRecord:
    """One `ray start --block` process: its PID is also the session id of all the node's processes."""

    name: str  # "head", "worker-1", "worker-2", ...
    pid: int
    temp_dir: str  # the node's own --temp-dir (logs under session_latest/logs)
    log: str  # stdout and stderr of `ray start`
    dashboard_agent_port: int
    num_cpus: int
    num_gpus: int
    stopped: bool = False
    start_ticks: int = 0  # the leader's start time (/proc/PID/stat): tells our PID from a reused one


@dataclass
class ClusterHandle:
    """What `start_cluster` started; saved as STATE_DIR/cluster.json and read back by `load_cluster`."""

    state_dir: str
    gcs_address: str  # 127.0.0.1:PORT, for ray.init(address=...) and `ray start --address`
    dashboard_url: str  # http://127.0.0.1:PORT: dashboard, Jobs API (`ray job submit --address`)
    client_address: str  # ray://127.0.0.1:PORT (Ray Client)
    auth_token_path: str  # the cluster's own token (mode 0600); never printed
    temp_root: str  # parent of the nodes' --temp-dir (STATE_DIR/ray-tmp, or /tmp/lcray-* if that is too long)
    env: dict[str, str]  # set these in every client; `client_env()` also drops a stray RAY_AUTH_TOKEN
    head: NodeRecord
    workers: list[NodeRecord] = field(default_factory=list)
    autoscaling_config: str | None = None  # fake_multinode config when started with autoscaling
    node_env: dict[str, str] = field(default_factory=dict)  # what every node's `ray start` runs with
    object_store_memory: int = 200_000_000  # bytes per node

    def __post_init__(self) -> None:
        self._popens: dict[int, subprocess.Popen] = {}  # set only in the process that started the nodes

    def nodes(self) -> list[NodeRecord]:
        return [self.head, *self.workers]

    def pids(self) -> list[int]:
        """PIDs of the recorded nodes (autoscaled nodes live in the head's session, see `session_pids`)."""
        return [node.pid for node in self.nodes()]

    def session_pids(self) -> dict[str, list[int]]:
        """Live processes of each recorded node, found by session id (includes autoscaled nodes under head)."""
        by_sid = _processes_by_session()
        return {node.name: _members(node, by_sid) for node in self.nodes()}

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) plus `env`, without RAY_AUTH_TOKEN (it would override the token path)."""
        env = dict(os.environ if base is None else base)
        env.pop("RAY_AUTH_TOKEN", None)
        env.update(self.env)
        return env

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        path.write_text(self.to_json() + "\n")


def load_cluster(state_dir: str | os.PathLike) -> ClusterHandle:
    """The handle saved by `start_cluster` in `state_dir`. Raises FileNotFoundError if there is none."""
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no cluster in {str(state_dir)!r}: {path} does not exist (run `start` first)")
    data = json.loads(path.read_text())
    data["head"] = NodeRecord(**data["head"])
    data["workers"] = [NodeRecord(**w) for w in data["workers"]]
    return ClusterHandle(**data)


def start_cluster(
    state_dir: str | os.PathLike,
    *,
    workers: int = 2,
    gpus_per_worker: int = 0,
    cpus_per_worker: int = 1,
    head_cpus: int = 0,
    object_store_memory: int = 200_000_000,
    autoscaling: bool = False,
    max_autoscaled_workers: int = 2,
    idle_timeout_minutes: float = 0.1,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> ClusterHandle:
    """Start a head and `workers` worker nodes on 127.0.0.1; return once all of them are alive.

    Workers declare `gpus_per_worker` fake GPUs (Ray schedules them; CUDA_VISIBLE_DEVICES is set in tasks).
    With `autoscaling`, the head also runs Ray's fake_multinode autoscaler with one node type `gpu_worker`
    (`cpus_per_worker` CPUs, `gpus_per_worker` GPUs, 0 to `max_autoscaled_workers` nodes, removed after
    `idle_timeout_minutes` idle). `extra_env` is added to every node's environment, e.g.
    {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3"} to have the GCS mark a
    killed node dead in ~5 s instead of ~17 s. Writes STATE_DIR/cluster.json. On any failure, stops what it started and
    raises RuntimeError with the tail of the failing node's log.
    """
    counts = dict(
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        head_cpus=head_cpus,
        max_autoscaled_workers=max_autoscaled_workers,
    )
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    if object_store_memory < 78_643_200:
        raise ValueError(f"`object_store_memory` must be >= 78643200 bytes (Ray's minimum), got {object_store_memory}")
    state = Path(state_dir).resolve()
    if (state / STATE_FILE).exists() and any(load_cluster(state).session_pids().values()):
        raise RuntimeError(
            f"a cluster from {state} is still running; stop it first: "
            f"python scripts/local_cluster.py stop --state-dir {state}"
        )
    (state / "logs").mkdir(parents=True, exist_ok=True)
    temp_root = state / "ray-tmp"  # not "ray": a `ray/` folder in a driver's cwd shadows the package
    if len(str(temp_root / f"worker-{workers}")) > MAX_TEMP_ROOT:
        temp_root = Path(tempfile.mkdtemp(prefix="lcray-", dir="/tmp"))
    token_path = state / "auth_token"
    if not token_path.exists():
        token_path.touch(mode=0o600)
        token_path.write_text(secrets.token_hex(32))

    gcs_port, dash_port, client_port, head_agent, as_metric, dash_metric, *agents = _free_ports(6 + workers)
    gcs_address = f"{LOOPBACK}:{gcs_port}"
    client_env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # or Ray turns 127.0.0.1 into the routable address
        "RAY_ADDRESS": gcs_address,
        "RAY_API_SERVER_ADDRESS": f"http://{LOOPBACK}:{dash_port}",
    }
    node_env = {  # `_ray-start` sets the loopback switch itself; nodes find the head from --address
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "RAY_USAGE_STATS_ENABLED": "0",
        "AUTOSCALER_METRIC_PORT": str(as_metric),  # fixed 44217 / 44227 by default: clash between clusters
        "DASHBOARD_METRIC_PORT": str(dash_metric),
        **(extra_env or {}),
    }
    head_args = [
        "--head",
        f"--node-ip-address={LOOPBACK}",
        f"--port={gcs_port}",
        f"--num-cpus={head_cpus}",
        "--num-gpus=0",
        f"--dashboard-host={LOOPBACK}",
        f"--dashboard-port={dash_port}",
        f"--dashboard-agent-listen-port={head_agent}",
        f"--ray-client-server-port={client_port}",
        f"--temp-dir={temp_root / 'head'}",
        f"--object-store-memory={object_store_memory}",
        "--disable-usage-stats",
        "--block",
    ]
    head_env = dict(node_env)
    autoscaling_config = state / "autoscaling.json" if autoscaling else None
    if autoscaling_config:
        config = _fake_multinode_config(
            gcs_address,
            head_cpus,
            cpus_per_worker,
            gpus_per_worker,
            max_autoscaled_workers,
            idle_timeout_minutes,
            object_store_memory,
        )
        autoscaling_config.write_text(json.dumps(config, indent=2))
        head_args.append(f"--autoscaling-config={autoscaling_config}")
        head_env |= {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}

    handle = ClusterHandle(
        state_dir=str(state),
        gcs_address=gcs_address,
        dashboard_url=f"http://{LOOPBACK}:{dash_port}",
        client_address=f"ray://{LOOPBACK}:{client_port}",
        auth_token_path=str(token_path),
        temp_root=str(temp_root),
        env=client_env,
        head=NodeRecord("head", 0, str(temp_root / "head"), str(state / "logs" / "head.log"), head_agent, head_cpus, 0),
        autoscaling_config=str(autoscaling_config) if autoscaling_config else None,
        node_env=node_env,
        object_store_memory=object_store_memory,
    )
    try:
        handle.head.pid = _launch(handle, handle.head, head_args, head_env)
        handle.save()
        _wait_for_alive_nodes(handle, 1, timeout_s)
        for agent_port in agents:
            _start_worker(handle, cpus_per_worker, gpus_per_worker, agent_port)
        _wait_for_alive_nodes(handle, 1 + workers, timeout_s)
    except BaseException:
        stop_cluster(handle)
        raise
    return handle


def stop_cluster(
    handle: ClusterHandle, *, grace_s: float = 0.0, timeout_s: float = 20.0, remove_temp_root: bool = False
) -> None:
    """Kill every process of every recorded node (workers first, then the head with any autoscaled nodes).

    With `grace_s` > 0, sends SIGTERM first (Ray then drains a node for up to 30 s) and SIGKILL after
    `grace_s`. With `remove_temp_root`, deletes the nodes' temp dirs (Ray's own logs) once all are gone;
    STATE_DIR (cluster.json, token, `ray start` logs) stays. Raises RuntimeError naming the PIDs still
    alive after `timeout_s`.
    """
    for node in [*handle.workers, handle.head]:
        if node.pid:
            _kill_session(handle, node, grace_s)
            node.stopped = True
    deadline = time.monotonic() + timeout_s
    while (left := {k: v for k, v in handle.session_pids().items() if v}) and time.monotonic() < deadline:
        _reap(handle)
        time.sleep(0.2)
    handle.save()
    if left:
        raise RuntimeError(f"processes still alive after stop: {left}")
    if remove_temp_root:
        shutil.rmtree(handle.temp_root, ignore_errors=True)


def kill_worker(handle: ClusterHandle, worker: int) -> NodeRecord:
    """SIGKILL every process of worker `worker` (numbered from 1, as in `worker-1`): a sudden node loss."""
    if not 1 <= worker <= len(handle.workers):
        raise ValueError(f"`worker` must be in [1, {len(handle.workers)}], got {worker!r}")
    node = handle.workers[worker - 1]
    _kill_session(handle, node, 0.0)
    node.stopped = True
    handle.save()
    return node


def add_worker(handle: ClusterHandle, *, cpus: int = 1, gpus: int = 0, timeout_s: float = 60.0) -> NodeRecord:
    """Start one more worker node (e.g. in place of one `kill_worker` took down); returns once it is alive.

    Raises RuntimeError with the end of its log if it is not alive after `timeout_s`.
    """
    known = {n["node_id"] for n in alive_nodes(handle)}
    node = _start_worker(handle, cpus, gpus, _free_ports(1)[0])
    deadline = time.monotonic() + timeout_s
    while not any(n["node_id"] not in known for n in alive_nodes(handle)):
        popen = handle._popens.get(node.pid)
        if time.monotonic() > deadline or (popen is not None and popen.poll() is not None):
            raise RuntimeError(f"{node.name} did not join; end of {node.log}:\n" + _tail(node.log))
        time.sleep(0.5)
    return node


def alive_nodes(handle: ClusterHandle) -> list[dict]:
    """Nodes the GCS reports ALIVE, from the dashboard's state API (authenticated with the cluster token)."""
    request = urllib.request.Request(
        f"{handle.dashboard_url}/api/v0/nodes?limit=1000&detail=true",
        headers={"Authorization": f"Bearer {Path(handle.auth_token_path).read_text().strip()}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        nodes = json.load(response)["data"]["result"]["result"]
    return [n for n in nodes if n.get("state") == "ALIVE"]


# --- internals ---------------------------------------------------------------------------------------


def _fake_multinode_config(gcs_address, head_cpus, cpus, gpus, max_workers, idle_timeout_minutes, object_store_memory):
    """Autoscaler config for Ray's fake_multinode provider (the wheel lacks the example YAML it builds on)."""
    return {
        "cluster_name": "local-fake",
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {
                "resources": {"CPU": cpus, "GPU": gpus, "object_store_memory": object_store_memory},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
        **{key: [] for key in LAUNCHER_LIST_KEYS},  # unused by fake_multinode, required by the schema
    }


def _free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1, outside Ray's worker port range."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
            if s.getsockname()[1] not in RAY_WORKER_PORTS:
                ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def _launch(handle: ClusterHandle, node: NodeRecord, ray_args: list[str], env: dict[str, str]) -> int:
    env = {**os.environ, **env}
    for key in ("RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(key, None)
    with open(node.log, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_ray-start", *ray_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=handle.state_dir,
        )
    handle._popens[popen.pid] = popen
    node.start_ticks = _start_ticks(popen.pid)
    return popen.pid


def _start_worker(handle: ClusterHandle, cpus: int, gpus: int, agent_port: int) -> NodeRecord:
    name = f"worker-{len(handle.workers) + 1}"
    state, temp_dir = Path(handle.state_dir), str(Path(handle.temp_root) / name)
    node = NodeRecord(name, 0, temp_dir, str(state / "logs" / f"{name}.log"), agent_port, cpus, gpus)
    worker_args = [
        f"--address={handle.gcs_address}",
        f"--num-cpus={cpus}",
        f"--num-gpus={gpus}",
        f"--dashboard-agent-listen-port={agent_port}",
        f"--temp-dir={temp_dir}",
        f"--object-store-memory={handle.object_store_memory}",
        "--disable-usage-stats",
        "--block",
    ]
    node.pid = _launch(handle, node, worker_args, handle.node_env)
    handle.workers.append(node)
    handle.save()
    return node


def _wait_for_alive_nodes(handle: ClusterHandle, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for node in handle.nodes():
            popen = handle._popens.get(node.pid)
            if popen is not None and popen.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited with code {popen.returncode}; end of {node.log}:\n" + _tail(node.log)
                )
        try:
            if len(alive_nodes(handle)) >= count:
                return
        except Exception as error:  # dashboard not up yet
            last_error = error
        time.sleep(0.5)
    raise RuntimeError(
        f"{count} nodes not alive after {timeout_s:.0f} s (last error: {last_error!r}); "
        f"end of {handle.nodes()[-1].log}:\n" + _tail(handle.nodes()[-1].log)
    )


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after "pid (comm) ": [state, ppid, pgrp, session, ..., starttime at index 19, ...]."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int:
    try:
        return int(_stat_fields(pid)[19])
    except OSError:
        return 0


def _members(node: NodeRecord, by_sid: dict[int, list[int]]) -> list[int]:
    """The node's live processes: its session, unless its PID now belongs to a different (reused) process.

    Linux keeps a PID reserved while any process uses it as a session id, so if the leader is gone the
    remaining members are still ours; if a process with that PID lives, its start time must match.
    """
    members = by_sid.get(node.pid, [])
    if node.pid in members and node.start_ticks and _start_ticks(node.pid) != node.start_ticks:
        return []
    return members


def _processes_by_session() -> dict[int, list[int]]:
    """Live (non-zombie) PIDs grouped by session id, from /proc/PID/stat."""
    sessions: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except OSError:
            continue
        if fields[0] != "Z":
            sessions.setdefault(int(fields[3]), []).append(int(entry))
    return sessions


def _kill_session(handle: ClusterHandle, node: NodeRecord, grace_s: float) -> None:
    """Signal every process of the node's session (see `_members`)."""
    if grace_s > 0:
        _signal_all(_members(node, _processes_by_session()), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _members(node, _processes_by_session()) and time.monotonic() < deadline:
            _reap(handle)
            time.sleep(0.2)
    # Repeat: a dying raylet may still be forking workers while we signal.
    for _ in range(5):
        members = _members(node, _processes_by_session())
        if not members:
            break
        _signal_all(members, signal.SIGKILL)
        time.sleep(0.1)
    _reap(handle)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(handle: ClusterHandle) -> None:
    for popen in handle._popens.values():
        popen.poll()


def _tail(path: str, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ray_start_on_loopback(ray_args: list[str]) -> None:
    """Run `ray start RAY_ARGS` in this process with the node address pinned to 127.0.0.1.

    `ray start` maps 127.0.0.1 (in --address and --node-ip-address) to the routable address found by
    `node_ip_address_from_perspective`; pin that to loopback here, and set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    after `import ray` so that the raylet, agents and workers started from here resolve loopback the same way
    (set before the import, it would make `ray start --address` refuse to start a worker node).
    """
    import ray._private.services as services
    from ray.scripts.scripts import main

    services.node_ip_address_from_perspective = lambda address=None: LOOPBACK
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    sys.argv = ["ray", "start", *ray_args]
    main()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_ray-start"]:
        _ray_start_on_loopback(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a head and N worker nodes on 127.0.0.1")
    start.add_argument("--workers", type=int, default=2, help="worker nodes started now (default 2)")
    start.add_argument("--gpus-per-worker", type=int, default=0, help="fake GPUs each worker declares")
    start.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs each worker declares")
    start.add_argument("--head-cpus", type=int, default=0, help="0 keeps trials off the head (default)")
    start.add_argument("--object-store-memory", type=int, default=200_000_000, help="bytes per node")
    start.add_argument("--autoscaling", action="store_true", help="also run the fake_multinode autoscaler")
    start.add_argument("--max-autoscaled-workers", type=int, default=2, help="autoscaler's max GPU workers")
    start.add_argument("--idle-timeout-minutes", type=float, default=0.1, help="idle autoscaled nodes go after")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the nodes")
    for name, text in [
        ("stop", "kill every process of the cluster"),
        ("status", "show nodes and processes"),
        ("env", "print `export` lines for clients"),
        ("stop-node", "kill one worker node"),
        ("add-node", "start one more worker node"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", required=True, help="directory holding cluster.json")
        if name == "stop":
            sub.add_argument("--grace", type=float, default=0.0, help="seconds of SIGTERM before SIGKILL")
            sub.add_argument("--remove-logs", action="store_true", help="also delete the nodes' temp dirs")
        if name == "stop-node":
            sub.add_argument("--worker", type=int, required=True, help="worker number, from 1")
        if name == "add-node":
            sub.add_argument("--cpus", type=int, default=1, help="CPUs it declares")
            sub.add_argument("--gpus", type=int, default=0, help="fake GPUs it declares")
    start.add_argument("--state-dir", required=True, help="directory for cluster.json, token and logs")
    args = parser.parse_args(argv)

    if args.command == "start":
        handle = start_cluster(
            args.state_dir,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
            head_cpus=args.head_cpus,
            object_store_memory=args.object_store_memory,
            autoscaling=args.autoscaling,
            max_autoscaled_workers=args.max_autoscaled_workers,
            idle_timeout_minutes=args.idle_timeout_minutes,
            timeout_s=args.timeout,
        )
        print(
            f"cluster up: {1 + len(handle.workers)} nodes, GCS {handle.gcs_address}, "
            f"dashboard {handle.dashboard_url}\nstate: {Path(handle.state_dir) / STATE_FILE}\n"
            f'clients: eval "$(python {sys.argv[0]} env --state-dir {handle.state_dir})"'
        )
        return 0
    handle = load_cluster(args.state_dir)
    if args.command == "stop":
        stop_cluster(handle, grace_s=args.grace, remove_temp_root=args.remove_logs)
        print(f"stopped: {', '.join(f'{n.name} (pid {n.pid})' for n in handle.nodes())}")
    elif args.command == "stop-node":
        node = kill_worker(handle, args.worker)
        print(f"killed {node.name} (session {node.pid})")
    elif args.command == "add-node":
        node = add_worker(handle, cpus=args.cpus, gpus=args.gpus)
        print(f"{node.name} joined (session {node.pid})")
    elif args.command == "env":
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in handle.env.items()) + "\nunset RAY_AUTH_TOKEN")
    else:
        for node in handle.nodes():
            print(
                f"{node.name:10} pid {node.pid:<8} processes {len(handle.session_pids()[node.name]):<4}"
                f"{'stopped' if node.stopped else ''}"
            )
        try:
            print(f"alive Ray nodes: {len(alive_nodes(handle))}")
        except OSError as error:
            print(f"dashboard unreachable: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
