"""A trial's termination notice: its node is draining, so the trial saves its state at once and stops.

    with TerminationNotice() as notice:      # in the trial's worker, around its epoch loop
        trainer.interrupt = notice.is_set    # checked between batches
        ...
        except TrainingInterrupted:
            save_notice_checkpoint(state)    # weights, optimiser, epoch, batch position
            raise TrialPreempted(...)        # Tune retries it on another node (retry_policy.py)

A spot or preemptible node learns that it will go away a little before it does. Ray turns that notice into a
drain of the node: `ray start --block` does it on SIGTERM (what Kubernetes sends a pod; Ray 2.60 drains for
RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S, default 30 s, before it kills the node's processes), and so do
`ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION` and a cluster manager that watches the cloud's notices.
A draining node takes no new work. The trial polls whether its own node is draining (the same Ray call as Ray
Train's PreemptionWatcher: `ray._private.state.state.get_draining_nodes()`, isolated in `draining_nodes`),
finishes the batch it is on, writes its state beside its Tune checkpoints and raises TrialPreempted, so Tune
restarts it elsewhere at once instead of when the node dies. The retry reads that state when it is newer than
Tune's last checkpoint: at most the batch in flight is lost, not the epoch.

A SIGTERM sent to a trial's worker process itself is Ray's: its handler exits the process at once (Python runs
signal handlers only on the main thread, and a function trainable trains on another), so such a trial restarts
from its last epoch checkpoint, as after any lost worker.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from typing import Any

import torch

from lstm_ray.train.training import Report, Trainer, TrainingInterrupted, run_epochs

POLL_S = 2.0  # how often a trial asks whether its node is draining: one small GCS call (Ray Train: 5 s)
NOTICE_FILE = "termination-notice.pt"  # in the trial's storage folder, beside Tune's checkpoint folders

logger = logging.getLogger(__name__)


class TrialPreempted(RuntimeError):
    """The trial's node is draining (a spot node's termination notice); its state was saved for the retry."""


def draining_nodes() -> dict[str, int]:
    """Hex ids of the nodes Ray is draining -> deadline (ms since the epoch, 0 for none). Ray has no public call
    for this in 2.60; Ray Train's preemption watcher uses this same one."""
    import ray._private.state

    return ray._private.state.state.get_draining_nodes()


class TerminationNotice:
    """A background thread that sets the notice once this worker's node is draining. `is_set()` is cheap enough
    to call between batches. Outside Ray (no node id) it never fires."""

    def __init__(self, poll_s: float = POLL_S):
        self._event, self._stop, self._poll_s = threading.Event(), threading.Event(), poll_s
        self._thread = threading.Thread(target=self._watch, name="lstm-ray-termination-notice", daemon=True)

    def is_set(self) -> bool:
        return self._event.is_set()

    def __enter__(self) -> TerminationNotice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        node = ray.get_runtime_context().get_node_id()
        while not self._stop.wait(self._poll_s):
            try:
                draining = node in draining_nodes()
            except Exception:  # the GCS busy or restarting: ask again at the next poll
                logger.debug("could not read the draining nodes", exc_info=True)
                continue
            if draining:
                logger.warning("this trial's node %s is draining: saving its state and stopping", node)
                self._event.set()
                return


def _notice_path() -> tuple[Any, str]:
    """(pyarrow filesystem, path) of this trial's notice checkpoint in its storage (every node sees it)."""
    from ray import tune

    storage = tune.get_context().get_storage()
    return storage.storage_filesystem, f"{storage.trial_fs_path}/{NOTICE_FILE}"


def save_notice_checkpoint(state: dict[str, Any]) -> None:
    filesystem, path = _notice_path()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with filesystem.open_output_stream(path) as out:
        out.write(buffer.getvalue())


def load_notice_checkpoint() -> dict[str, Any] | None:
    """The state this trial saved on a termination notice, or None."""
    import pyarrow.fs

    filesystem, path = _notice_path()
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with filesystem.open_input_file(path) as source:
        return torch.load(io.BytesIO(source.read()), map_location="cpu", weights_only=True)


def drop_notice_checkpoint() -> None:
    """Remove the notice checkpoint once an epoch checkpoint has superseded it."""
    filesystem, path = _notice_path()
    with contextlib.suppress(OSError):  # already gone: an earlier attempt of this trial dropped it
        filesystem.delete_file(path)


def run_until_notice(trainer: Any, report: Report, state: dict[str, Any] | None) -> None:
    """`run_epochs(trainer, report, state)` that stops on the node's termination notice: a Trainer between two
    batches, its state saved for the retry; any other (cross-validation folds, data-parallel ranks) after the
    epoch it is on.
    Raises TrialPreempted then. `state` is where to start: Tune's checkpoint or the notice checkpoint
    (`newer_state`); each checkpoint reported after a start from the notice one records `resumed_from`."""
    resumed_from = _resumed_from(state)

    def report_or_stop(metrics: dict[str, float], epoch_state: dict[str, Any]) -> None:
        report(metrics, epoch_state | ({"resumed_from": resumed_from} if resumed_from else {}))
        if resumed_from and metrics["epoch"] == resumed_from["epoch"] + 1:
            drop_notice_checkpoint()  # Tune's checkpoint of this epoch supersedes it
        if notice.is_set():
            raise TrialPreempted(f"its node is draining; stopped after epoch {metrics['epoch']:g}")

    with TerminationNotice() as notice:
        # Ranks of a data-parallel trial must stop at the same batch; they stop after the epoch instead.
        if isinstance(trainer, Trainer) and getattr(getattr(trainer, "parallel", None), "world", 1) == 1:
            trainer.interrupt = notice.is_set
        try:
            run_epochs(trainer, report_or_stop, state)
        except TrainingInterrupted as stopped:
            save_notice_checkpoint(trainer.state())
            raise TrialPreempted(f"its node is draining; state saved {stopped}") from None


def _resumed_from(state: dict[str, Any] | None) -> dict[str, int] | None:
    resume_at = (state or {}).get("resume_at")
    return {"epoch": int(state["epoch"]), "batch": int(resume_at["batch"])} if state and resume_at else None


def newer_state(checkpoint: dict[str, Any] | None, notice: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state to continue from: the notice checkpoint when it is at or past the epoch of Tune's checkpoint
    (it holds that epoch plus the batches trained after it), else Tune's."""
    if notice is None or (checkpoint is not None and int(checkpoint["epoch"]) > int(notice["epoch"])):
        return checkpoint
    return notice
