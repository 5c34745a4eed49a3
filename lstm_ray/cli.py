"""The `lstm-ray` command line: parsing and calling, nothing else.

    lstm-ray tune configs/quickstart.yaml --set search.num_samples=4 --set train.max_epochs=3
    lstm-ray validate configs/quickstart.yaml

Bad input (config, data, flags) prints one `error: ...` line and exits with code 2 before Ray starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lstm_ray.errors import ConfigError

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-ray", description="Tune LSTM/GRU/RNN models with Ray Tune and MLflow.")
    commands = parser.add_subparsers(dest="command", required=True)

    tune = commands.add_parser("tune", help="run a sweep")
    _config_arguments(tune)
    tune.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="Ray cluster (auto, or HOST:PORT); default: start Ray here",
    )
    tune.add_argument("--verbose", action="store_true", help="show Ray's trial table and worker logs")
    tune.set_defaults(run=run_tune)

    validate = commands.add_parser("validate", help="check a config and its data without starting Ray")
    _config_arguments(validate)
    validate.set_defaults(run=run_validate)
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.max_epochs=3 (repeatable)",
    )


def load_checked(args: argparse.Namespace):
    """The config with overrides applied, and its data prepared once to prove it is usable."""
    from lstm_ray.config import load_config
    from lstm_ray.data.dataset import prepare_dataset, window_settings

    cfg = load_config(args.config, args.overrides)
    data = prepare_dataset(cfg.data, settings=window_settings(cfg))
    return cfg, data


def run_validate(args: argparse.Namespace) -> int:
    cfg, data = load_checked(args)
    rows = {split: end - start for split, (start, end) in data.bounds.items()}
    print(
        f"OK: {cfg.name}: {cfg.data.source}, rows train/val/test {rows['train']}/{rows['val']}/{rows['test']}, "
        f"{len(cfg.search.space)} searched parameters, {cfg.search.num_samples} trials"
    )
    return 0


def run_tune(args: argparse.Namespace) -> int:
    cfg, data = load_checked(args)  # every input error surfaces here, before Ray is imported
    from lstm_ray.tuning import run_sweep

    summary = run_sweep(
        cfg, config_text=Path(args.config).read_text(), data=data, address=args.address, verbose=args.verbose
    )
    print_summary(summary, cfg.tracking.uri)
    return 0


def print_summary(summary, tracking_uri: str) -> None:
    counts = summary.counts
    minutes, seconds = divmod(int(summary.elapsed_s), 60)
    print(
        f"\nSweep {summary.name}: {sum(counts.values())} trials in {minutes}m{seconds:02d}s "
        f"({counts['completed']} completed, {counts['stopped_early']} stopped early, {counts['failed']} failed)"
    )
    for trial_id, reason in summary.failures.items():
        print(f"  failed {trial_id}: {reason}")
    print(f"Best trial: {summary.metric} = {summary.best_value:.5g}")
    for key, value in sorted(summary.best_params.items()):
        print(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    print("Winner on the held-out test split: " + ", ".join(f"{k} = {v:.5g}" for k, v in summary.test_metrics.items()))
    print(f"MLflow: parent run {summary.parent_run_id}, best model {summary.model_uri}")
    print(f"Results and checkpoints: {summary.storage_path}")
    print(f"Review the sweep: mlflow ui --backend-store-uri {absolute_tracking_uri(tracking_uri)}")


def absolute_tracking_uri(uri: str) -> str:
    """sqlite:///relative.db made absolute, so the printed `mlflow ui` command works from any directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


if __name__ == "__main__":
    sys.exit(main())
