"""Data-parallel training of one trial on one node: PyTorch DistributedDataParallel (DDP), free of Ray.

    with data_parallel(trainer, checkpoint, workers=2, threads=1):
        run_epochs(trainer, report, checkpoint)          # this process is rank 0: it reports and checkpoints

The calling process is rank 0: it starts ranks 1 .. workers-1 as child processes (`python -m
lstm_ray.train.distributed RANK`), sends each the trainer's models, training windows and config through a pipe,
and reports and checkpoints exactly as a lone Trainer does. The group meets over a TCPStore listening on
127.0.0.1 only (a port the system picks), with NCCL when the trainer trains on a GPU (rank r on the r-th share
of the visible GPUs) and gloo on CPUs.

train.batch_size is the global batch: every rank draws the same shuffled batches (one shuffle seed) and trains
on its contiguous part of each, 1/workers of it; DDP averages the ranks' gradients, so the learning rate means
what it means for one process with that batch. A partial last batch is split as evenly as it goes and each
rank's loss is weighted by its share, so every step's gradient is the one a single process would take, up to
floating-point summation order. Rank 0 validates and sends the monitored metric to the others (early stopping
and the plateau schedule act on every rank alike). A checkpoint restores on every rank.

The children never outlive rank 0: it stops them when training returns or fails (Ray Tune ends a stopped trial
by raising SystemExit in its thread), and a child whose parent died (an actor killed) exits by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lstm_ray.config import TrainConfig
from lstm_ray.data.windows import Windows
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.train.crossval import FoldTrainers
from lstm_ray.train.models import SequenceModel
from lstm_ray.train.training import DivergedError, OneProcess, Trainer, seed_everything

HOST = "127.0.0.1"  # every rank of a trial runs on the trial's node
GROUP_TIMEOUT = timedelta(minutes=30)  # a collective may wait this long, e.g. while rank 0's report is held by Tune
JOIN_TIMEOUT_S = 600.0  # for the children to start Python, import torch and read their models
STOP_WAIT_S = 30.0  # for a child to finish its last epoch and leave the group after rank 0 has


class DataParallelRank(OneProcess):
    """One process of a data-parallel group (see the module docstring); `device` is this rank's own."""

    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device  # collectives run on it: NCCL on GPUs, gloo on CPUs

    def wrap(self, model: nn.Module) -> nn.Module:
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def part(self, batch: tuple[Any, ...]) -> tuple[tuple[Any, ...], float, int]:
        """This rank's contiguous part of a global batch. A rank whose part is empty (a last batch smaller than the
        group) still takes part in the gradient exchange: with the batch's first window, weighted 0."""
        size = len(batch[0])
        low, high = shard_bounds(size, self.rank, self.world)
        if low == high:
            return tuple(None if t is None else t[:1] for t in batch), 0.0, 0
        return tuple(None if t is None else t[low:high] for t in batch), self.world * (high - low) / size, high - low

    def all_sum(self, values: list[float]) -> list[float]:
        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.tolist()

    def broadcast(self, value: float) -> float:
        sent = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(sent, src=0)
        return float(sent.item())

    def all_gather(self, state: torch.Tensor) -> list[torch.Tensor]:
        mine = state.to(self.device)
        states = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(states, mine)
        return [s.cpu() for s in states]


def shard_bounds(size: int, rank: int, world: int) -> tuple[int, int]:
    """[low, high) of rank `rank`'s part of `size` items cut into `world` contiguous parts, sizes differing by <= 1."""
    base, extra = divmod(size, world)
    low = rank * base + min(rank, extra)
    return low, low + base + (rank < extra)


@contextlib.contextmanager
def data_parallel(
    trainer: Trainer | FoldTrainers, checkpoint: dict[str, Any] | None, *, workers: int, threads: int = 1
) -> Iterator[None]:
    """Make `trainer` rank 0 of `workers` processes for the with-block, which runs its epoch loop from `checkpoint`
    (`run_epochs(trainer, report, checkpoint)`); every child loads `checkpoint` too. `threads`: torch threads of
    each child. Raises ConfigError when train.batch_size is not a multiple of `workers`, and RuntimeError naming
    a child that failed, with the child's own error; errors every rank meets alike (DivergedError) pass as raised.
    """
    trainers = trainer.trainers if isinstance(trainer, FoldTrainers) else [trainer]
    cfg, device = trainers[0].cfg, trainers[0].device
    if cfg.batch_size % workers:
        raise ConfigError(
            "train.batch_size", f"{cfg.batch_size} is the global batch and must be a multiple of {workers} workers"
        )
    store = _loopback_store(workers)
    payload = _payload(trainers, checkpoint, workers, threads, store.port, device)
    children = [_start_rank(rank, payload) for rank in range(1, workers)]
    try:
        _wait_until_ready(store, children)
        rank = _join_group(0, workers, store, device)
        for each in trainers:
            each.distribute(rank)
        yield
        _stop(children, wait_s=STOP_WAIT_S)
    except (DivergedError, ConfigError):
        raise  # every rank met it alike: no child to blame
    except Exception as err:
        failed = _child_failure(store, children, wait_s=1.0)  # a dead peer breaks the group at once
        if failed:
            raise RuntimeError(failed) from err
        raise
    finally:  # also on SystemExit: how Ray Tune ends the thread of a trial it stops
        _stop(children, wait_s=0)
        if dist.is_initialized():
            dist.destroy_process_group()


def _loopback_store(workers: int) -> dist.TCPStore:
    """The group's TCPStore on a free port of 127.0.0.1 only (on its own the store listens on every interface)."""
    listener = socket.create_server((HOST, 0))
    port = listener.getsockname()[1]
    # The store owns the socket from here and closes it when it goes.
    return dist.TCPStore(
        HOST, port, workers, True, timeout=GROUP_TIMEOUT, wait_for_workers=False, master_listen_fd=listener.detach()
    )


def _payload(
    trainers: list[Trainer],
    checkpoint: dict[str, Any] | None,
    workers: int,
    threads: int,
    port: int,
    device: torch.device,
) -> bytes:
    """What a child needs to build the same trainers, as plain data and tensors (it loads them weights only); the
    models' starting weights reach it from rank 0 when DDP wraps them."""
    gpus_each = max(1, torch.cuda.device_count() // workers) if device.type == "cuda" else 0
    buffer = io.BytesIO()
    torch.save(
        {
            "trainers": [_recipe(t) for t in trainers],
            "checkpoint": checkpoint,
            "world": workers,
            "threads": threads,
            "port": port,
            "gpus_each": gpus_each,  # rank r trains on visible GPU r * gpus_each; 0: on the CPU
        },
        buffer,
    )
    return buffer.getvalue()


def _recipe(trainer: Trainer) -> dict[str, Any]:
    windows = trainer.windows["train"]
    arrays = {"x": windows.x, "y": windows.y, "lengths": windows.lengths}  # what the batches are drawn from
    return {
        "model_args": trainer.model.model_args,
        "frozen": [name for name, p in trainer.model.named_parameters() if not p.requires_grad],
        "windows": {k: None if v is None else torch.tensor(v) for k, v in arrays.items()},
        "train": dataclasses.asdict(trainer.cfg),
        "monitor": trainer.monitor,
    }


def _trainer_from(recipe: dict[str, Any], device: torch.device) -> Trainer:
    model = SequenceModel(**recipe["model_args"])
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in recipe["frozen"])
    windows = Windows(**{k: None if v is None else v.numpy() for k, v in recipe["windows"].items()})
    return Trainer(model, {"train": windows}, TrainConfig(**recipe["train"]), monitor=recipe["monitor"], device=device)


def _start_rank(rank: int, payload: bytes) -> subprocess.Popen:
    # The child imports what this process imports (a Ray runtime_env's working_dir or py_modules included).
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen([sys.executable, "-m", __name__, str(rank)], stdin=subprocess.PIPE, env=env)
    assert child.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # a child that died at start is reported by _wait_until_ready
        child.stdin.write(payload)
    child.stdin.close()
    return child


def _wait_until_ready(store: dist.TCPStore, children: list[subprocess.Popen]) -> None:
    """Wait for every child to be about to join the group; a child that dies first fails the trial at once
    instead of leaving rank 0 waiting at the group's door."""
    keys = [f"ready/{rank}" for rank in range(1, len(children) + 1)]
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not store.check(keys):
        failed = _child_failure(store, children, wait_s=0)
        if failed:
            raise RuntimeError(failed)
        if time.monotonic() > deadline:
            raise RuntimeError(f"data-parallel ranks did not start within {JOIN_TIMEOUT_S:g} s")
        time.sleep(0.05)


def _join_group(rank: int, world: int, store: dist.TCPStore, device: torch.device) -> DataParallelRank:
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda" and device.index is None:  # select_device's "cuda": the current GPU
        device = torch.device("cuda", torch.cuda.current_device())
    options = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=GROUP_TIMEOUT, **options)
    return DataParallelRank(rank, world, device)


def _child_failure(store: dist.TCPStore, children: list[subprocess.Popen], wait_s: float = 5.0) -> str | None:
    """A sentence naming the first child that exited with an error and its error, or None when none did."""
    deadline = time.monotonic() + wait_s
    while True:
        for rank, child in enumerate(children, start=1):
            if child.poll():
                key = f"error/{rank}"
                error = store.get(key).decode() if store.check([key]) else "see the trial's log"
                return f"data-parallel rank {rank} of {len(children) + 1} exited with code {child.returncode}: {error}"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _stop(children: list[subprocess.Popen], wait_s: float) -> None:
    """Let the children end within `wait_s`, then terminate, then kill what is left; reap them all."""
    deadline = time.monotonic() + wait_s
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # rank 0 is gone (its actor was killed): nobody is left to train for


def _serve_as_rank(rank: int) -> None:
    """A child's life: read the payload, build the trainers, join the group, train the same epochs, leave."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the driver's to handle; rank 0 ends us
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))  # rank 0's limit was measured for rank 0's process
    payload = torch.load(io.BytesIO(sys.stdin.buffer.read()), map_location="cpu", weights_only=True)
    store = dist.TCPStore(HOST, payload["port"], payload["world"], False, timeout=GROUP_TIMEOUT)
    try:
        torch.set_num_threads(payload["threads"])
        device = torch.device("cpu")
        if payload["gpus_each"]:
            device = torch.device("cuda", rank * payload["gpus_each"])
            torch.cuda.set_device(device)
        trainers = [_trainer_from(recipe, device) for recipe in payload["trainers"]]
        seed_everything(trainers[0].cfg.seed)
        store.set(f"ready/{rank}", "1")
        group = _join_group(rank, payload["world"], store, device)
        for each in trainers:
            each.distribute(group)
        trainer = trainers[0] if len(trainers) == 1 else FoldTrainers(trainers)
        checkpoint = payload["checkpoint"]
        if checkpoint is not None:
            if checkpoint.get("resume_at"):  # an epoch interrupted mid-way: rank 0's loss so far counts once
                checkpoint["resume_at"] |= {"loss_sum": 0.0, "count": 0}
            trainer.load_state(checkpoint)
        while not trainer.done:
            trainer.run_epoch()
        dist.destroy_process_group()
    except BaseException as err:
        with contextlib.suppress(Exception):  # rank 0 may be gone already
            store.set(f"error/{rank}", f"{type(err).__name__}: {one_line(err)}")
        raise


if __name__ == "__main__":
    _serve_as_rank(int(sys.argv[1]))
