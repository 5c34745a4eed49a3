"""GPU sweep throughput: 1, 2, 4 and 8 trials packed on one GPU, fp32 against bf16 and fp16 autocast, and a 2-GPU
data-parallel trial against one GPU, for a small and a large LSTM, with the GPU's busy fraction and memory.

Every run is a real lstm-ray sweep (`run_sweep`, tracking off, FIFO: every trial trains every epoch) of K identical
trials at once (they differ in train.seed only) on a synthetic series of two features (`noisy_seasonal`), each trial
asking resources.gpu 1/K. Ratios are against the same model in fp32 at one trial per GPU, run in this process.
A background thread samples the GPU (NVML: pynvml, else Ray's copy of it; without NVML only memory, through
torch.cuda.mem_get_info, and no busy fraction). The trials run in Ray worker processes, so device-wide counters
are read, never this process's own allocator.

    .venv/bin/python scripts/bench/gpu.py --quick            # about 4 minutes on one H100 (estimated, not timed)
    .venv/bin/python scripts/bench/gpu.py                    # about 15 minutes (estimated, not timed)
    .venv/bin/python scripts/bench/gpu.py --quick --out $OUT # also gpu.json and gpu.md in $OUT, after every run
    .venv/bin/python scripts/bench/gpu.py --dry-run          # the planned runs and their configs; needs no GPU
    .venv/bin/python scripts/bench/gpu.py --device cpu --quick --no-save   # the smallest case on the CPU (a test)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from common import command_line, save
from ray import tune

from lstm_ray.config import parse_config
from lstm_ray.config.resources import ResourcesConfig

MODELS = {"small": {"hidden_size": 64, "num_layers": 1}, "large": {"hidden_size": 512, "num_layers": 3}}
PACKING = (1, 2, 4, 8)  # trials per GPU: resources.gpu 1, 0.5, 0.25, 0.125
LOOKBACK, HORIZON, BATCH = 48, 4, 256


@dataclasses.dataclass(frozen=True)
class Size:
    rows: int  # rows of the synthetic series (about 70 % of them become training windows)
    epochs: dict[str, int]  # per model: each trial trains this many epochs
    cap_s: float  # search.time_budget of each run: a safety cap, not the expected time
    packing: tuple[int, ...] = PACKING
    precisions: tuple[str, ...] = ("bf16", "fp16")  # besides fp32, at one trial per GPU
    data_parallel: tuple[str, ...] = ("large",)  # models also run as one trial over 2 GPUs, where 2 exist


SIZES = {
    "full": Size(rows=150_000, epochs={"small": 12, "large": 4}, cap_s=600, data_parallel=("small", "large")),
    "quick": Size(rows=40_000, epochs={"small": 6, "large": 3}, cap_s=45),
    # The smallest case, to exercise the whole pipeline on a CPU.
    "cpu": Size(rows=3_000, epochs={"small": 2}, cap_s=120, packing=(1, 2), precisions=(), data_parallel=()),
}


@dataclasses.dataclass(frozen=True)
class Run:
    model: str
    precision: str
    per_device: int  # trials at once on the device
    gpus: int = 1  # GPUs per trial (2: data-parallel)

    @property
    def name(self) -> str:
        return f"{self.model} {self.precision} x{self.per_device}" + (f" on {self.gpus} GPUs" if self.gpus > 1 else "")

    @property
    def is_baseline(self) -> bool:
        return self.precision == "fp32" and self.per_device == 1 and self.gpus == 1


def plan(size: Size, gpu_count: int) -> list[Run]:
    """Every model at each packing in fp32 and in each other precision at one trial per GPU; then, where two
    GPUs exist, the data-parallel runs."""
    runs = []
    for model in size.epochs:
        runs += [Run(model, "fp32", k) for k in size.packing]
        runs += [Run(model, precision, 1) for precision in size.precisions]
    if gpu_count >= 2:
        runs += [Run(model, "fp32", 1, gpus=2) for model in size.data_parallel]
    return runs


def experiment(run: Run, size: Size, source: Path, folder: Path, device: str) -> dict[str, Any]:
    """The experiment config of one run, as the YAML would parse."""
    cores = os.cpu_count() or 1
    return {
        "name": "bench-gpu-" + run.name.replace(" ", "-"),
        "data": {
            "source": str(source),
            "target": "y",
            "features": ["y", "x"],
            "time_column": "t",
            "lookback": LOOKBACK,
            "horizon": HORIZON,
        },
        "model": {"cell": "lstm", **MODELS[run.model]},
        "train": {"max_epochs": size.epochs[run.model], "batch_size": BATCH, "precision": run.precision},
        "search": {
            "algorithm": "grid",
            "scheduler": "fifo",
            "num_samples": 1,
            "time_budget": size.cap_s,
            "space": {"train.seed": {"grid": list(range(run.per_device))}},
        },
        "resources": {
            "cpu": min(1.0, cores / run.per_device),
            "gpu": 0 if device == "cpu" else (run.gpus if run.gpus > 1 else 1 / run.per_device),
        },
        "tracking": {"enabled": False},
        "storage": {"path": str(folder / "results"), "keep_checkpoints": 1},
    }


class GpuSampler:
    """Samples every GPU's busy percentage and used memory (MiB) every `period` s in a background thread."""

    def __init__(self, period: float = 0.1) -> None:
        self.period, self.nvml = period, nvml()
        count = self.nvml.nvmlDeviceGetCount() if self.nvml else torch.cuda.device_count()
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)] if self.nvml else []
        self.count = count
        self.samples: list[tuple[float, list[tuple[float | None, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def read(self) -> list[tuple[float | None, float]]:
        """(busy % or None, used MiB) per GPU, now."""
        if self.nvml:
            return [(self._busy(h), self.nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20) for h in self.handles]
        return [(None, _used_mib(*torch.cuda.mem_get_info(i))) for i in range(self.count)]

    def _busy(self, handle: Any) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except self.nvml.NVMLError:  # e.g. a MIG slice, which reports no utilisation
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append((time.perf_counter(), self.read()))

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def usage(samples: list, run: tuple[float, float], training: tuple[float, float], before: list, gpus: int) -> dict:
    """From a GpuSampler's `samples`, over the `gpus` GPUs a run used (the busiest): the mean busy % while trials
    trained (`training`: perf_counter start and end; None where NVML gave none) and the peak memory while the `run`
    lasted above `before` (a `read()` taken as it began), in MiB summed over those GPUs."""
    during = [s for t, s in samples if run[0] <= t <= run[1]]
    if not during:
        return {"busy_pct": None, "memory_mib": None}
    trained = [s for t, s in samples if training[0] <= t <= training[1]] or during
    busy = [[s[i][0] for s in trained if s[i][0] is not None] for i in range(len(before))]
    peak = [max(s[i][1] for s in during) - before[i][1] for i in range(len(before))]
    used = sorted(range(len(before)), key=lambda i: (_mean(busy[i]), peak[i]), reverse=True)[:gpus]
    known = [_mean(busy[i]) for i in used if busy[i]]
    return {"busy_pct": _mean(known) if known else None, "memory_mib": sum(peak[i] for i in used)}


def nvml() -> Any:
    """The NVML bindings, initialised: pynvml (nvidia-ml-py) if installed, else the copy Ray ships; None without
    NVML or its library."""
    try:
        import pynvml
    except ImportError:
        from ray._private.thirdparty import pynvml
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 -- any NVML failure (no library, no driver) means: read torch instead
        return None
    return pynvml


def card() -> dict[str, str]:
    """The GPU's name and the driver's version (NVML, else nvidia-smi, else "unknown")."""
    driver = "unknown"
    lib = nvml()
    if lib:
        driver = lib.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
    elif shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = subprocess.run(query, capture_output=True, text=True, check=False).stdout.split("\n")[0] or driver
    return {"gpu": torch.cuda.get_device_name(0), "driver": driver, "cuda": str(torch.version.cuda)}


class EpochClock(tune.Callback):
    """When each epoch of each trial started and ended (this process's perf_counter), and how trials ended."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, float]] = []
        self.errors = 0

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        end = time.perf_counter()
        self.epochs.append((end - float(result.get("time_this_iter_s", 0.0)), end))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.errors += 1

    def window(self) -> tuple[float, float]:
        """From the first epoch's start to the last epoch's end: the time trials trained, without the sweep's
        start (Ray, worker processes, CUDA contexts) and end."""
        return min(s for s, _ in self.epochs), max(e for _, e in self.epochs)


def measure(run: Run, cfg_raw: dict, data: Any, train_windows: int, sampler: GpuSampler | None) -> dict[str, Any]:
    """Run one sweep; its throughput over the training window, and the GPU's busy fraction and memory."""
    from lstm_ray.sweep.tuning import run_sweep

    cfg, clock = parse_config(cfg_raw), EpochClock()
    before = sampler.read() if sampler else []
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), open(os.devnull, "w") as quiet:  # one line per run instead
        summary = run_sweep(cfg, config_text="", data=data, callbacks=[clock], progress=quiet)
    wall = time.perf_counter() - start
    if not clock.epochs:
        raise RuntimeError(f"no trial reported an epoch ({clock.errors} failed): {summary.failures}")
    first, last = clock.window()
    epochs = len(clock.epochs)
    planned = run.per_device * cfg.train.max_epochs
    no_gpu = {"busy_pct": None, "memory_mib": None}
    gpu = usage(sampler.samples, (start, start + wall), (first, last), before, run.gpus) if sampler else no_gpu
    return {
        "run": run.name,
        **dataclasses.asdict(run),
        "baseline": run.is_baseline,
        "trial_epochs": epochs,
        "planned_epochs": planned,
        "failed_trials": clock.errors,
        "train_s": last - first,
        "wall_s": wall,
        "trial_epochs_per_s": epochs / (last - first),
        "samples_per_s": epochs * train_windows / (last - first),
        **gpu,
    }


def line(r: dict[str, Any]) -> str:
    text = (
        f"{r['run']:26s}: {r['trial_epochs']} trial-epochs in {r['train_s']:6.1f} s (sweep {r['wall_s']:5.1f} s) = "
        f"{r['trial_epochs_per_s']:6.2f} trial-epochs/s, {r['samples_per_s']:9.0f} samples/s, "
        f"{r['ratio']:.2f}x baseline"
    )
    if r["busy_pct"] is not None:
        text += f", GPU busy {r['busy_pct']:.0f} %"
    if r["memory_mib"] is not None:
        text += f", memory +{r['memory_mib']:.0f} MiB"
    if r["trial_epochs"] < r["planned_epochs"]:
        text += f" ({r['trial_epochs']} of {r['planned_epochs']} epochs: a failed trial or the time cap ended it)"
    return text


def table(results: list[dict[str, Any]], device: dict[str, str], command: str) -> str:
    """A markdown table for docs/benchmarks.md: one row per run, ratios against each model's baseline."""
    rows = [
        f"`{command}` on {device['gpu']} (driver {device['driver']}, CUDA {device['cuda']}, "
        f"torch {torch.__version__}), {time.strftime('%Y-%m-%d')}:",
        "",
        "| model | precision | trials per GPU | GPUs per trial | trial-epochs/s | samples/s | x baseline | GPU busy | "
        "GPU memory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        busy = "n/a" if r["busy_pct"] is None else f"{r['busy_pct']:.0f} %"
        memory = "n/a" if r["memory_mib"] is None else f"{r['memory_mib']:.0f} MiB"
        rows.append(
            f"| {r['model']} {MODELS[r['model']]['hidden_size']}x{MODELS[r['model']]['num_layers']} | {r['precision']} "
            f"| {r['per_device']} | {r['gpus']} | {r['trial_epochs_per_s']:.2f} | {r['samples_per_s']:.0f} | "
            f"{r['ratio']:.2f} | {busy} | {memory} |"
        )
    return "\n".join(rows)


def synthetic_source(rows: int, folder: Path) -> Path:
    import pyarrow.parquet as pq

    from lstm_ray.data.synthetic import noisy_seasonal

    path = folder / f"noisy_seasonal_{rows}.parquet"
    pq.write_table(noisy_seasonal(n_rows=rows), path)
    return path


def data_parallel_note() -> str:
    """What a trial with resources.gpu 2 does in this build."""
    if "workers" in {f.name for f in dataclasses.fields(ResourcesConfig)}:
        return "resources.gpu 2: a data-parallel trial over 2 GPUs, train.batch_size as the global batch"
    return "resources.gpu 2: this build has no data-parallel trials yet (no resources.workers); it trains on one GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer epochs: about 4 min on an H100")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: the smallest case, a test")
    parser.add_argument("--dry-run", action="store_true", help="print the planned runs and their configs; run nothing")
    parser.add_argument("--no-save", action="store_true", help="do not write JSON or docs/benchmarks.md")
    parser.add_argument("--out", type=Path, help="also write gpu.json and gpu.md here after every run")
    args = parser.parse_args()
    size = SIZES["cpu" if args.device == "cpu" else "quick" if args.quick else "full"]
    if args.dry_run:
        dry_run(size, args.device)
    elif args.device == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA GPU here (torch {torch.__version__}): nothing measured; run it on a GPU machine")
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
        try:
            run_all(args, size, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def dry_run(size: Size, device: str) -> None:
    """One line per planned run, `RUN NAME: CONFIG-JSON`; the data-parallel runs as if two GPUs were here."""
    folder = Path(tempfile.gettempdir()) / "bench-gpu-XXXX"
    for run in plan(size, 2 if device == "cuda" else 0):
        config = experiment(run, size, folder / f"noisy_seasonal_{size.rows}.parquet", folder / "run", device)
        print(f"RUN {run.name}: {json.dumps(config)}")
    if device == "cuda" and size.data_parallel:
        print(f"runs on 2 GPUs: only where 2 exist (here: {torch.cuda.device_count()}); {data_parallel_note()}")


def run_all(args: argparse.Namespace, size: Size, folder: Path) -> None:
    import ray

    on_gpu = args.device == "cuda"
    sampler = GpuSampler() if on_gpu else None
    gpu_count = torch.cuda.device_count() if on_gpu else 0  # as CUDA_VISIBLE_DEVICES allows
    device = card() if on_gpu else {"gpu": "CPU", "driver": "-", "cuda": "-"}
    print(f"{device['gpu']}, driver {device['driver']}, {gpu_count} GPU(s); NVML: {bool(sampler and sampler.nvml)}")
    runs = plan(size, gpu_count)
    bench = Bench(size, folder, args.device, sampler, args.out, device)
    with sampler or contextlib.nullcontext():
        one_gpu = gpu_count > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ
        with contextlib.ExitStack() as on_one_gpu:
            if one_gpu:  # the Ray that the first sweep starts sees one GPU: every packing on that one
                on_one_gpu.callback(os.environ.pop, "CUDA_VISIBLE_DEVICES")
                os.environ["CUDA_VISIBLE_DEVICES"] = "0"
            for run in [r for r in runs if r.gpus == 1]:
                bench.run(run)
            ray.shutdown()  # a data-parallel sweep starts Ray again, with every GPU
        data_parallel = [r for r in runs if r.gpus > 1]
        if data_parallel:
            print(data_parallel_note(), flush=True)
        for run in data_parallel:
            bench.run(run)
        ray.shutdown()
    print("\n" + table(bench.results, device, command_line()))
    if not args.no_save and on_gpu and bench.results:
        name = "gpu-quick" if args.quick else "gpu"
        record = {"card": device, "size": dataclasses.asdict(size), "results": bench.results}
        save(name, record, summary(bench.results, device))


@dataclasses.dataclass
class Bench:
    """The runs' shared inputs (the synthetic data set, prepared once) and their results so far."""

    size: Size
    folder: Path
    device: str  # cuda or cpu
    sampler: GpuSampler | None
    out: Path | None  # --out
    card: dict[str, str]
    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        from lstm_ray.data.dataset import prepare_sweep_data
        from lstm_ray.data.windows import window_setting

        self.source = synthetic_source(self.size.rows, self.folder)
        cfg = parse_config(experiment(Run("small", "fp32", 1), self.size, self.source, self.folder, self.device))
        self.data = prepare_sweep_data(cfg)
        self.train_windows = len(self.data.windows(window_setting(cfg))["train"])
        print(f"{self.size.rows} rows -> {self.train_windows} training windows of {LOOKBACK} steps, batch {BATCH}")

    def run(self, run: Run) -> None:
        """Measure and print one run, with its ratio against its model's baseline; a failure is one line, so it
        does not cost the other runs of a short GPU session."""
        run_folder = self.folder / run.name.replace(" ", "-")
        config = experiment(run, self.size, self.source, run_folder, self.device)
        try:
            result = measure(run, config, self.data, self.train_windows, self.sampler)
        except Exception as err:  # noqa: BLE001 -- reported in one line; the next run goes on
            print(f"{run.name:26s}: failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}", flush=True)
            return
        finally:
            shutil.rmtree(run_folder, ignore_errors=True)  # a large model's checkpoints: ~75 MB per trial
        base = next((r for r in [*self.results, result] if r["model"] == run.model and r["baseline"]), None)
        result["ratio"] = result["trial_epochs_per_s"] / base["trial_epochs_per_s"] if base else float("nan")
        self.results.append(result)
        print(line(result), flush=True)
        if self.out:
            write_out(self.out, self.results, self.card)


def summary(results: list[dict[str, Any]], device: dict[str, str]) -> str:
    """One cell of the docs/benchmarks.md results table."""
    ratios = ", ".join(f"{r['run']} {r['ratio']:.2f}x" for r in results if not r["baseline"])
    return f"{device['gpu']}, driver {device['driver']}: trial-epochs/s against fp32 x1: {ratios}"


def write_out(folder: Path, results: list[dict[str, Any]], device: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu.json").write_text(json.dumps({"card": device, "results": results}, indent=2) + "\n")
    (folder / "gpu.md").write_text(table(results, device, command_line()) + "\n")


def _used_mib(free: int, total: int) -> float:
    return (total - free) / 2**20


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


if __name__ == "__main__":
    main()
