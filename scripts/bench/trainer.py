"""Trainer throughput: sequences per second of lstm-ray's training loop against a plain PyTorch loop on the
same model and data, single-threaded, hidden sizes 32 to 512, and the achieved GFLOP/s against this core's
measured matrix-multiply peak.

    .venv/bin/python scripts/bench/trainer.py            # about 5 minutes
    .venv/bin/python scripts/bench/trainer.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import save
from torch import nn

from lstm_ray.config import ModelConfig, TrainConfig
from lstm_ray.data.windows import Windows
from lstm_ray.train.models import build_model
from lstm_ray.train.training import fit, seed_everything

LOOKBACK, FEATURES, BATCH = 32, 8, 64


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def lstm_flops_per_sequence(hidden: int) -> float:
    """Forward + backward FLOPs of one 1-layer LSTM sequence: 4 gates, input and recurrent matmuls, x3 for backward."""
    forward = 2 * 4 * hidden * (FEATURES + hidden) * LOOKBACK
    return 3 * forward


def windows(n: int) -> dict[str, Windows]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, LOOKBACK, FEATURES)).astype(np.float32)
    y = x[:, -1:, :1].copy()
    val = Windows(x[:BATCH], y[:BATCH])
    return {"train": Windows(x, y), "val": val, "test": val}


def time_ours(hidden: int, data: dict[str, Windows], epochs: int) -> float:
    seed_everything(0)
    model = build_model(ModelConfig(hidden_size=hidden), FEATURES, 1, 1)
    cfg = TrainConfig(max_epochs=epochs, batch_size=BATCH, grad_clip=0.0)
    start = time.perf_counter()
    fit(model, data, cfg, inverse_targets=lambda y: y, report=lambda m, s: None, device=torch.device("cpu"))
    return time.perf_counter() - start


def time_plain(hidden: int, data: dict[str, Windows], epochs: int) -> float:
    """The loop a PyTorch user writes by hand: same model, batches, optimiser, and a validation pass per epoch."""
    seed_everything(0)
    model = build_model(ModelConfig(hidden_size=hidden), FEATURES, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    x, y = torch.tensor(data["train"].x), torch.tensor(data["train"].y)
    vx = torch.tensor(data["val"].x)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            model(vx)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [32, 64] if args.quick else [32, 64, 128, 256, 512]
    n, epochs = (256, 1) if args.quick else (2048, 2)
    data = windows(n)
    peak = matmul_peak(256 if args.quick else 1024)
    rows = []
    for hidden in sizes:
        time_ours(hidden, data, 1)  # warm-up: first calls pay for allocator and kernel selection
        time_plain(hidden, data, 1)
        # Alternate and keep each loop's best of 3: other processes on the machine only ever add time.
        runs = [(time_ours(hidden, data, epochs), time_plain(hidden, data, epochs)) for _ in range(3)]
        ours, plain = min(r[0] for r in runs), min(r[1] for r in runs)
        sequences = n * epochs
        gflops = lstm_flops_per_sequence(hidden) * sequences / ours / 1e9
        rows.append(
            {
                "hidden": hidden,
                "ours_seq_per_s": sequences / ours,
                "plain_seq_per_s": sequences / plain,
                "ratio_ours_to_plain": plain / ours,
                "gflops": gflops,
                "fraction_of_peak": gflops / peak,
            }
        )
        print(
            f"hidden {hidden:4d}: ours {sequences / ours:9.0f} seq/s, plain {sequences / plain:9.0f} seq/s, "
            f"ratio {plain / ours:.2f}, {gflops:6.1f} GFLOP/s = {gflops / peak:.0%} of matmul peak"
        )
    print(f"matmul peak (1 thread): {peak:.1f} GFLOP/s")
    worst = min(r["ratio_ours_to_plain"] for r in rows)
    if not args.quick:
        summary = (
            f"ours/plain speed {worst:.2f}-{max(r['ratio_ours_to_plain'] for r in rows):.2f}x; "
            + f"hidden 512 at {rows[-1]['fraction_of_peak']:.0%} of {peak:.0f} GFLOP/s matmul peak"
        )
        save("trainer", {"matmul_peak_gflops": peak, "rows": rows}, summary)


if __name__ == "__main__":
    main()
