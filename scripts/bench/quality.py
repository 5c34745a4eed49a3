"""Model quality: does the model a sweep finds beat the naive baselines and a linear reference, on held-out data?

For each bundled data set (co2 one and four weeks ahead, macro, seattle_weather, japanese_vowels) and a synthetic
series with a linear trend, a daily cycle and noise of known variance (`lstm_ray.data.synthetic.trend_seasonal`),
one real sweep (`run_sweep`: local Ray, HyperOpt + ASHA, MLflow in a temporary SQLite file) with fixed seeds and
the budget below (forecast: 32 trials of up to 24 epochs, searching the model, the optimiser, `data.window_norm`
and `data.target_transform`; macro forecasts GDP from its own history and also searches the lookback and
`model.highway`; japanese_vowels: 24 trials of up to 60 epochs). It prints the winner's test metric, every
baseline's on the same test windows, a classical reference (forecast: a linear autoregression on the differences
of the target, fitted by numpy least squares on the training rows, lookback - 1 lags, iterated over the horizon),
and the ratios; for the synthetic series also the noise floor (its noise's standard deviation, the RMSE of a
perfect forecast).

Targets (issue 19): on every bundled forecast set the winner beats the best baseline on test; co2 one week ahead
at most 0.8x the last-value RMSE; the synthetic series within 1.2x the noise floor; japanese_vowels test accuracy
at least 0.98 (published recurrent results: 0.98-0.99).

    .venv/bin/python scripts/bench/quality.py                    # about 10 minutes on 2 cores
    .venv/bin/python scripts/bench/quality.py --only co2-h1 --no-save
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.csv as pv
from common import save

from lstm_ray.config import parse_config
from lstm_ray.data.dataset import prepare_sweep_data
from lstm_ray.data.synthetic import trend_seasonal
from lstm_ray.data.windows import window_setting

NOISE = 0.3  # the synthetic series' noise standard deviation
SPACE = {
    "model.cell": {"choice": ["lstm", "gru"]},
    "model.hidden_size": {"choice": [16, 32, 64]},
    "model.num_layers": {"choice": [1, 2]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "train.lr": {"loguniform": [1.0e-3, 3.0e-2]},
    "train.batch_size": {"choice": [32, 64, 128]},
    "data.window_norm": {"choice": ["standard", "last", "mean"]},
    "data.target_transform": {"choice": ["none", "diff"]},
}
MACRO_SPACE = SPACE | {  # 203 quarters: the growth rate (log_diff) and the lookback matter more than the network
    "data.target_transform": {"choice": ["none", "diff", "log_diff"]},
    "data.lookback": {"choice": [4, 8, 12]},
    "model.highway": {"choice": [0, 4]},
}
CLASSIFY_SPACE = {
    "model.hidden_size": {"choice": [32, 64, 128]},
    "model.bidirectional": {"choice": [False, True]},
    "model.head": {"choice": ["last", "mean"]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "model.input_dropout": {"uniform": [0.0, 0.2]},
    "train.lr": {"loguniform": [1.0e-3, 1.0e-2]},
    "train.batch_size": {"choice": [16, 32]},
}
SEARCH = {"algorithm": "hyperopt", "scheduler": "asha", "num_samples": 32, "grace_period": 3, "seed": 0}
CO2 = {"source": "builtin:co2", "target": "co2", "time_column": "date"}


def cases(folder: Path) -> dict[str, dict]:
    """name -> the config's data, train and search sections that differ from the shared ones."""
    trend = folder / "trend.csv"
    pv.write_csv(trend_seasonal(noise=NOISE), trend)
    forecast = {"train": {"max_epochs": 24, "grad_clip": 1.0}, "search": {"metric": "val_rmse", "mode": "min"}}
    return {
        "co2-h1": forecast | {"data": CO2 | {"lookback": 52, "horizon": 1}},
        "co2-h4": forecast | {"data": CO2 | {"lookback": 26, "horizon": 4}},
        "macro": {
            "data": {"source": "builtin:macro", "features": ["realgdp"], "lookback": 8, "horizon": 1},
            "train": forecast["train"],
            "search": forecast["search"] | {"space": MACRO_SPACE},
        },
        "seattle_weather": forecast | {"data": {"source": "builtin:seattle_weather", "lookback": 28, "horizon": 1}},
        "synthetic-trend": forecast
        | {"data": {"source": str(trend), "target": "y", "time_column": "t", "lookback": 48}},
        "japanese_vowels": {
            "data": {"source": "builtin:japanese_vowels", "task": "classify", "val_fraction": 0.2},
            "train": {"max_epochs": 60, "grad_clip": 1.0},
            "search": {"metric": "val_accuracy", "mode": "max", "num_samples": 24, "space": CLASSIFY_SPACE},
        },
    }


def run_case(name: str, sections: dict, folder: Path, trials: int | None = None, epochs: int | None = None) -> dict:
    """One sweep (`trials` and `epochs` shrink it for a smoke run); the winner's test scores, the baselines' and
    the linear reference's."""
    from lstm_ray.sweep.tuning import run_sweep

    raw = {
        "name": f"quality-{name}",
        "data": sections["data"],
        "model": {"hidden_size": 32},
        "train": {"seed": 0, **sections["train"]},
        "search": SEARCH | {"space": SPACE} | sections["search"],  # a case's own space replaces the shared one
        "resources": {"cpu": 1},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "storage": {"path": str(folder / "results")},
    }
    if trials:
        raw["search"] |= {"num_samples": trials, "grace_period": 1}
    if epochs:
        raw["train"]["max_epochs"] = epochs
        raw["search"].pop("max_t", None)
    cfg = parse_config(raw)
    data = prepare_sweep_data(cfg)
    summary = run_sweep(cfg, config_text=str(raw), data=data)
    metric = summary.comparison.metric
    row = {
        "metric": f"test_{metric}",
        "winner": summary.test_metrics[f"test_{metric}"],
        "baselines": {
            k.split(".")[0]: v for k, v in summary.comparison.scores.items() if k.endswith(f".test_{metric}")
        },
        "winner_params": summary.best_params,
    }
    if cfg.data.task == "forecast":
        from lstm_ray.config import apply_params

        best = apply_params(cfg, summary.best_params)
        row["linear"] = linear_reference(data.for_config(best.data), window_setting(best))
    return row


def linear_reference(data, setting) -> float:
    """Test RMSE of a least-squares AR(lookback - 1) model of the first target's changes, fitted on the training
    rows, forecasting each test window's horizon step by step from the window's past."""
    y = data.history[:, 0]
    lags = max(1, setting.lookback - 1)
    change = np.diff(y, prepend=np.nan)  # change[t] = y[t] - y[t - 1]
    train = np.flatnonzero(data.codes == 0)
    rows = train[train >= lags + 1]
    features = np.stack([change[rows - k] for k in range(1, lags + 1)], axis=1)
    design = np.column_stack([np.ones(len(rows)), features])
    coef, *_ = np.linalg.lstsq(design, change[rows], rcond=None)
    windows = data.windows(setting)["test"]
    actual = data.inverse_targets(windows.y)[..., 0]
    predicted = np.empty_like(actual)
    for i, start in enumerate(windows.starts):
        past = list(change[start - lags : start][::-1])  # most recent first
        level = y[start - 1]
        for h in range(setting.horizon):
            step = coef[0] + float(np.dot(coef[1:], past[:lags]))
            level += step
            predicted[i, h] = level
            past.insert(0, step)
    keep = np.ones(actual.shape, bool) if windows.mask is None else windows.mask[..., 0]
    return float(np.sqrt(np.mean((predicted - actual)[keep] ** 2)))


def report(name: str, row: dict) -> str:
    maximise = row["metric"] in ("test_accuracy", "test_f1", "test_auc")
    pick = max if maximise else min
    best_name = pick(row["baselines"], key=row["baselines"].get)
    best = row["baselines"][best_name]
    parts = [f"{name}: winner {row['metric']} {row['winner']:.4g}"]
    parts += [f"{k} {v:.4g} ({row['winner'] / v:.2f}x)" for k, v in row["baselines"].items()]
    if "linear" in row:
        parts.append(f"linear AR {row['linear']:.4g} ({row['winner'] / row['linear']:.2f}x)")
    if name == "synthetic-trend":
        parts.append(f"noise floor {NOISE:g} ({row['winner'] / NOISE:.2f}x)")
    beats = row["winner"] > best if maximise else row["winner"] < best
    parts.append(f"{'beats' if beats else 'LOSES TO'} {best_name}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--trials", type=int, help="trials per sweep (default: the budget above)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the budget above)")
    parser.add_argument("--no-save", action="store_true", help="print only; do not write docs/")
    args = parser.parse_args()
    results, lines = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sections in cases(Path(tmp)).items():
            if args.only and name not in args.only:
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            results[name] = run_case(name, sections, folder, args.trials, args.epochs)
            lines.append(report(name, results[name]))
            print(lines[-1], flush=True)
    print("\n".join(lines))
    if not args.no_save:
        save("quality", results, " / ".join(lines))


if __name__ == "__main__":
    main()
