"""The ordered queue of MLflow writes behind the sweep's tracker: sent in batches by one thread, never dropped.

    outbox = Outbox(open_client(uri), experiment_id, parent_run_id)
    outbox.put(Write("log", trial_id, metrics=[...]))      # returns at once
    if not outbox.close(timeout=120):                       # the server stayed down
        outbox.spill("/results/mlflow-outbox/<parent run id>")
    replay_spilled("/results")                              # later: sends what was spilled, then deletes it

A write that fails for a transport reason (server down, timeout, 5xx) is retried in order with back-off; one
the server rejects (4xx) is logged and skipped so it cannot stall the rest. What is still unacknowledged when
`close` gives up is written, with the files it uploads, to a spill folder (local, NFS or s3://) and sent by
`replay_spilled` on the next sweep start, resume or `lstm-ray report`.
"""

from __future__ import annotations

import json
import logging
import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from lstm_ray.errors import one_line
from lstm_ray.redaction import redact
from lstm_ray.storage import as_uri
from lstm_ray.tracking.runs import ROLE_TRIAL, TAG_MODEL_URI, TAG_ROLE, TAG_TRIAL_ID, open_client

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # MLflow's limits per log_batch call: entities in all, params, tags
MAX_PARAMS = 100
MAX_TAGS = 100
PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param value's length
SPILL_FOLDER = "mlflow-outbox"  # under the sweep's storage path
SPILL_FILE = "outbox.json"
_HURRY = object()  # queued by flush(): send what is pending now, without waiting for more to batch with it


@dataclass
class Write:
    """One queued MLflow operation for a trial's child run, or the parent run when trial_id is None.

    kind: start (create the child run) | log (metrics, params, tags) | end (final tags, status) |
    artifacts (upload the local folder `source` under `artifact_path`) | model (log the serving model staged
    in `source`, registered as `register_as` when set).
    """

    kind: str
    trial_id: str | None
    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    run_name: str = ""
    status: str = ""
    source: str = ""
    artifact_path: str = ""
    register_as: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in self.metrics],
            "params": [[p.key, p.value] for p in self.params],
            "tags": [[t.key, t.value] for t in self.tags],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Write:
        return cls(
            **data
            | {
                "metrics": [Metric(*m) for m in data["metrics"]],
                "params": [Param(*p) for p in data["params"]],
                "tags": [RunTag(*t) for t in data["tags"]],
            }
        )


class Outbox:
    """An ordered queue of MLflow writes drained by one background thread.

    A write waits up to `flush_interval` seconds for later ones to go in the same call: one `log_batch` then
    carries a trial's start parameters, the epochs it reported meanwhile and its final tags.
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        parent_run_id: str,
        flush_interval: float = 0.5,
        run_ids: dict[str, str] | None = None,
    ):
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.run_ids: dict[str, str] = dict(run_ids or {})  # trial id -> MLflow run id, once the run exists
        self.started: set[str] = set()  # trial ids whose run creation is queued
        self.model_uri = ""  # set once a queued model is logged
        self.flush_interval = flush_interval
        self._queue: queue.Queue[Write | None] = queue.Queue()
        self._pending: list[Write] = []
        self._alone: set[int] = set()  # ids of pending writes to send one by one (a merged batch was rejected)
        self._done = threading.Condition()
        self._queued = self._acknowledged = 0  # writes put, and writes acknowledged (or skipped as rejected)
        self._give_up = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="lstm-ray-mlflow", daemon=True)
        self._thread.start()

    def put(self, write: Write) -> None:
        with self._done:
            self._queued += 1
        self._queue.put(write)

    def flush(self, timeout: float) -> bool:
        """Wait until every write queued so far is acknowledged; False if that took longer than `timeout`."""
        self._queue.put(_HURRY)
        with self._done:
            target = self._queued
            return self._done.wait_for(lambda: self._acknowledged >= target, timeout)

    def close(self, timeout: float = 300.0) -> bool:
        """Send everything and stop; False when writes were still unacknowledged after `timeout` seconds.

        On False the unsent writes are kept in order (`unsent()`), ready to `spill`.
        """
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._give_up.set()
            self._thread.join()  # returns after the attempt in flight, bounded by the HTTP timeout
        return not self.unsent()

    def unsent(self) -> list[Write]:
        waiting = [w for w in list(self._queue.queue) if isinstance(w, Write)]
        return self._pending + waiting

    def spill(self, folder_uri: str) -> str:
        """Write the unsent writes and the files they upload to `folder_uri` (local path or URI)."""
        self.spill_to(*pafs.FileSystem.from_uri(as_uri(folder_uri)))
        return folder_uri

    def spill_to(self, fs: pafs.FileSystem, root: str) -> None:
        fs.delete_dir_contents(root, missing_dir_ok=True)
        fs.create_dir(root)
        writes = []
        for i, write in enumerate(self.unsent()):
            data = write.to_json()
            if write.source:
                data["source"] = f"files/{i}"
                fs.create_dir(f"{root}/files/{i}")
                pafs.copy_files(
                    write.source,
                    f"{root}/files/{i}",
                    source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs,
                )
            writes.append(data)
        state = {
            "tracking_uri": self.client.tracking_uri,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "run_ids": self.run_ids,
            "writes": writes,
        }
        with fs.open_output_stream(f"{root}/{SPILL_FILE}") as out:
            out.write(json.dumps(state).encode())

    def _drain(self) -> None:
        closing = False
        backoff = self.flush_interval
        while True:
            closing = self._take(closing)
            try:
                self._flush()
                backoff = self.flush_interval
            except Exception as err:  # noqa: BLE001 - any transport error: keep the writes and retry
                log.warning("MLflow write failed (%s); retrying in %.1f s, nothing is dropped", one_line(err), backoff)
                if self._give_up.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)
                continue
            if closing and not self._pending:
                return

    def _take(self, closing: bool) -> bool:
        """Move what is queued into the pending list, and what comes within `flush_interval` of the first write
        unless close() or flush() asks for it sooner; True once close() was asked for."""
        try:
            item = self._queue.get(timeout=self.flush_interval)
        except queue.Empty:
            return closing
        hurry = closing
        deadline = time.monotonic() + self.flush_interval
        while True:
            if item is None:
                closing = hurry = True
            elif item is _HURRY:
                hurry = True
            else:
                self._pending.append(item)
            wait = 0.0 if hurry else deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return closing

    def _flush(self) -> None:
        while self._pending:
            batch = self._next_batch()
            write = batch[0]
            try:
                self._apply(write) if len(batch) == 1 and write.kind != "log" else self._log(write.trial_id, batch)
            except MlflowException as err:
                if not _rejected(err):
                    raise
                if len(batch) > 1:  # one bad write must not take the good ones merged with it down: resend singly
                    self._alone.update(id(w) for w in batch)
                    continue
                log.error("MLflow rejected a %s write for %s; skipping it: %s", write.kind, write.trial_id, err)
            sent = {id(w) for w in batch}
            self._pending = [w for w in self._pending if id(w) not in sent]
            self._alone -= sent
            with self._done:
                self._acknowledged += len(batch)
                self._done.notify_all()

    def _next_batch(self) -> list[Write]:
        """The first pending write, merged with the later writes of the same run that can go with it.

        A run's start or log write takes the run's later logs, and its end write, which closes the batch. The
        writes of concurrent trials interleave; each run's own writes keep their order and nothing passes an
        upload, so one log_batch call carries a trial's parameters, every epoch it reported meanwhile and its
        final tags.
        """
        first = self._pending[0]
        if first.kind not in ("start", "log") or id(first) in self._alone:
            return [first]
        batch = [first]
        for write in self._pending[1:]:
            if write.kind not in ("start", "log", "end"):
                break
            if write.trial_id != first.trial_id:
                continue
            if id(write) in self._alone or write.kind == "start":
                break
            batch.append(write)
            if write.kind == "end":
                break
        return batch

    def _log(self, trial_id: str | None, writes: list[Write]) -> None:
        """One run's writes in as few log_batch calls as MLflow's limits allow: a start write creates the run
        first, an end write's status is set last."""
        start = writes[0] if writes[0].kind == "start" else None
        end = writes[-1] if writes[-1].kind == "end" else None
        if start:
            self._create_run(start)
        metrics = [m for w in writes for m in w.metrics]
        params = list({p.key: p for w in reversed(writes) for p in reversed(w.params)}.values())  # first value wins
        tags = list({t.key: t for w in writes if w is not start for t in w.tags}.values())  # a later value wins
        log_in_batches(self.client, self._run_id(trial_id), metrics, params, tags)
        if end:
            self.client.set_terminated(self._run_id(trial_id), status=end.status)

    def _apply(self, write: Write) -> None:
        if write.kind == "start":
            self._create_run(write)
            log_in_batches(self.client, self.run_ids[write.trial_id], params=write.params)
        elif write.kind == "end":
            run_id = self._run_id(write.trial_id)
            self.client.log_batch(run_id, metrics=write.metrics, tags=write.tags)
            self.client.set_terminated(run_id, status=write.status)
        elif write.kind == "artifacts":
            self.client.log_artifacts(self._run_id(write.trial_id), write.source, write.artifact_path or None)
        elif write.kind == "model":
            from lstm_ray.tracking.serving import log_serving_model

            self.model_uri = log_serving_model(
                self.client.tracking_uri, self.parent_run_id, write.source, write.register_as or None
            )
            self.client.set_tag(self.parent_run_id, TAG_MODEL_URI, self.model_uri)
        else:
            raise ValueError(f"unknown write kind {write.kind!r}")

    def _create_run(self, start: Write) -> None:
        if start.trial_id not in self.run_ids:  # a retry after the run was created must not create another
            tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, TAG_TRIAL_ID: start.trial_id, TAG_ROLE: ROLE_TRIAL}
            tags |= {t.key: t.value for t in start.tags}
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=start.run_name)
            self.run_ids[start.trial_id] = run.info.run_id

    def _run_id(self, trial_id: str | None) -> str:
        return self.parent_run_id if trial_id is None else self.run_ids[trial_id]


def log_in_batches(
    client: MlflowClient,
    run_id: str,
    metrics: list[Metric] = (),
    params: list[Param] = (),
    tags: list[RunTag] = (),
) -> None:
    """`log_batch` in as many calls as MLflow's limits need (1000 metrics, 100 params, 100 tags, 1000 in all)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        p, t = params[:MAX_PARAMS], tags[:MAX_TAGS]
        m = metrics[: MAX_BATCH - len(p) - len(t)]
        client.log_batch(run_id, metrics=m, params=p, tags=t)
        metrics, params, tags = metrics[len(m) :], params[len(p) :], tags[len(t) :]


def param_value(value: Any) -> str:
    """A param's value as MLflow keeps it, at most 6000 characters: a longer value is cut and ends with '...'; a
    URI's credentials are masked (`redaction.redact`)."""
    if hasattr(value, "item"):
        value = value.item()
    text = redact(str(value))
    return text if len(text) <= PARAM_VALUE_LIMIT else text[: PARAM_VALUE_LIMIT - 3] + "..."


def spill_folder(storage_uri: str, parent_run_id: str) -> str:
    """Where a sweep's unsent writes are spilled: `<storage>/mlflow-outbox/<parent run id>`."""
    if parent_run_id in ("", ".", "..") or "/" in parent_run_id or "\\" in parent_run_id:
        raise ValueError(f"{parent_run_id!r} is not an MLflow run id; the spill would leave {storage_uri}")
    return f"{storage_uri.rstrip('/')}/{SPILL_FOLDER}/{parent_run_id}"


def replay_spilled(storage_uri: str, timeout: float = 60.0) -> list[str]:
    """Send every spilled outbox under `storage_uri`; returns the parent run ids now fully delivered.

    A spill whose server is still unreachable after `timeout` seconds is written back, unchanged in order,
    for the next attempt.
    """
    fs, root = pafs.FileSystem.from_uri(as_uri(f"{storage_uri.rstrip('/')}/{SPILL_FOLDER}"))
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    delivered = []
    for info in fs.get_file_info(pafs.FileSelector(root)):
        if info.type == pafs.FileType.Directory and _replay_one(fs, info.path, timeout):
            delivered.append(info.base_name)
    return delivered


def _replay_one(fs: pafs.FileSystem, folder: str, timeout: float) -> bool:
    with fs.open_input_stream(f"{folder}/{SPILL_FILE}") as stream:
        state = json.loads(stream.read())
    with tempfile.TemporaryDirectory(prefix="lstm-ray-replay-") as local:
        pafs.copy_files(folder, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        client = open_client(state["tracking_uri"])
        outbox = Outbox(client, state["experiment_id"], state["parent_run_id"], run_ids=state["run_ids"])
        for data in state["writes"]:
            write = Write.from_json(data)
            if write.source:
                write.source = str(Path(local, write.source).resolve())
                if not Path(write.source).is_relative_to(Path(local).resolve()):  # spills only hold files/<i>
                    log.warning("skipped a spilled upload from %s, outside its spill folder", write.source)
                    continue
            outbox.put(write)
        if outbox.close(timeout):
            log.info("sent %d spilled MLflow writes of run %s", len(state["writes"]), state["parent_run_id"])
            fs.delete_dir(folder)
            return True
        # What was sent is gone from the spill (with the runs it created), the rest kept in order for next time.
        outbox.spill_to(fs, folder)
    return False


def _rejected(err: MlflowException) -> bool:
    """True when the server answered and refused the write (4xx): retrying would fail the same way."""
    return 400 <= err.get_http_status_code() < 500
