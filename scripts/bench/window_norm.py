"""How `data.window_norm` and `data.target_transform` change what one fixed LSTM learns, against the baselines.

For each data case and each setting, the same model (LSTM, hidden 32, Adam lr 0.003, batch 64, 12 epochs) is
trained with lstm-ray's own trainer on two seeds; the epoch with the best validation RMSE is scored on the test
split. It prints the test RMSE as a multiple of the last-value baseline's on the same windows (below 1 beats it),
so the numbers compare across settings run in the same session. This is how the defaults were chosen.

    .venv/bin/python scripts/bench/window_norm.py             # about 2 minutes on 2 cores
    .venv/bin/python scripts/bench/window_norm.py --no-save   # print only
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

import pyarrow.csv as pv
import torch
from common import save

from lstm_ray.config import apply_params, parse_config
from lstm_ray.data.dataset import prepare_dataset
from lstm_ray.data.synthetic import trend_seasonal
from lstm_ray.data.windows import window_setting
from lstm_ray.sweep.trainable import build_trainer
from lstm_ray.train.metrics import baseline_scores
from lstm_ray.train.models import model_from_state
from lstm_ray.train.training import evaluate, run_epochs, seed_everything

SETTINGS = [("none", "none"), ("last", "none"), ("mean", "none"), ("standard", "none"), ("none", "diff"),
            ("standard", "diff"), ("standard", "log")]  # fmt: skip
MODEL = {"model": {"hidden_size": 32}, "train": {"max_epochs": 12, "lr": 0.003, "batch_size": 64}}


def cases(folder: Path) -> dict[str, dict]:
    """Data sections: the quickstart's, weekly CO2 one step ahead, and a trending synthetic series."""
    trend = folder / "trend.csv"
    pv.write_csv(trend_seasonal(), trend)
    co2 = {"source": "builtin:co2", "time_column": "date", "target": "co2"}
    synthetic = {"source": str(trend), "target": "y", "time_column": "t", "lookback": 48}
    return {
        "co2 h4 lb26 (quickstart)": co2 | {"lookback": 26, "horizon": 4},
        "co2 h1 lb52": co2 | {"lookback": 52, "horizon": 1},
        "synthetic trend h1": synthetic | {"horizon": 1},
        "synthetic trend h6": synthetic | {"horizon": 6},
    }


def test_rmse(raw: dict, seed: int) -> float:
    """Train one model; the test RMSE of its best validation epoch."""
    cfg = parse_config(copy.deepcopy(raw) | {"name": "bench"})
    cfg = apply_params(cfg, {"train.seed": seed})
    data, setting = prepare_dataset(cfg.data), window_setting(cfg)
    seed_everything(seed)
    trainer = build_trainer(cfg, data, torch.device("cpu"))
    best = {"val": float("inf")}

    def keep_best(metrics: dict, state: dict) -> None:
        if metrics["val_rmse"] < best["val"]:
            best.update(val=metrics["val_rmse"], state=copy.deepcopy({k: state[k] for k in ("model", "model_args")}))

    run_epochs(trainer, keep_best)
    model = model_from_state(best["state"])
    return evaluate(model, data.windows(setting)["test"], data.inverse_targets, torch.device("cpu"))["rmse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-save", action="store_true", help="print only; do not write docs/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for case, data_section in cases(Path(folder)).items():
            base = parse_config({"name": "bench", "data": data_section} | MODEL)
            naive = baseline_scores(prepare_dataset(base.data), window_setting(base), ("test",))
            last_value = naive["last_value.test_rmse"]
            for norm, transform in SETTINGS:
                raw = {"data": data_section | {"window_norm": norm, "target_transform": transform}} | MODEL
                ratio = statistics.mean(test_rmse(raw, seed) for seed in (0, 1)) / last_value
                rows.setdefault(f"{norm} / {transform}", {})[case] = ratio
                print(f"{case:26s} window_norm {norm:8s} target_transform {transform:5s} {ratio:.2f}x last_value")
    table = _table(rows)
    print(table)
    if not args.no_save:
        best = {case: min(rows, key=lambda r: rows[r][case]) for case in next(iter(rows.values()))}
        save("window_norm", {"ratios_to_last_value": rows}, f"best per case: {best}")


def _table(rows: dict[str, dict[str, float]]) -> str:
    cases_ = list(next(iter(rows.values())))
    lines = ["| window_norm / target_transform | " + " | ".join(cases_) + " |", "|---" * (len(cases_) + 1) + "|"]
    for name, ratios in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{ratios[c]:.2f}x" for c in cases_) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
