"""The `lstm-ray` command line: parsing and calling, nothing else.

    lstm-ray tune configs/quickstart.yaml --set search.num_samples=4 --set train.max_epochs=3
    lstm-ray validate configs/quickstart.yaml
    lstm-ray submit configs/cluster-gpu.yaml --address http://HEAD:8265 --follow

Bad input (config, data, flags) prints one `error: ...` line and exits with code 2 before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from lstm_ray.errors import ERROR_LINE_LIMIT, ConfigError, one_line
from lstm_ray.outcomes import SweepFailed, reason_lines
from lstm_ray.process_exit import exit_with
from lstm_ray.redaction import redact, split_credentials

EXIT_BAD_INPUT = 2
EXIT_SWEEP_FAILED = 1  # the sweep ran but no trial reported its metric


def run() -> None:
    exit_with(main())  # the `lstm-ray` command; process_exit says why it ends the process itself


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as err:
        print(f"error: {one_line(redact(str(err)), ERROR_LINE_LIMIT)}", file=sys.stderr)  # passwords redacted first
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:
        print(str(err) or "interrupted", file=sys.stderr)  # a sweep's says how to resume it
        return 130
    except SweepFailed as err:
        print_failed_sweep(err)
        return EXIT_SWEEP_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-ray", description="Tune LSTM/GRU/RNN models with Ray Tune and MLflow.")
    parser.add_argument("--version", action="version", version=f"lstm-ray {version('lstm-ray')}")
    commands = parser.add_subparsers(dest="command", required=True)

    tune = commands.add_parser("tune", help="run a sweep")
    _config_arguments(tune)
    tune.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="Ray cluster (auto, or HOST:PORT); default: start Ray here",
    )
    tune.add_argument("--verbose", action="store_true", help="show Ray's trial table and worker logs")
    tune.add_argument(
        "--pick", help="search.pick: the Pareto front member that wins, e.g. 'lowest val_rmse where latency_ms < 5'"
    )
    tune.set_defaults(run=run_tune)

    resume = commands.add_parser("resume", help="continue an interrupted sweep (driver crash, Ctrl-C)")
    resume.add_argument("sweep", metavar="NAME_OR_PATH", help="the sweep's folder, or its name (the latest folder)")
    resume.add_argument("--storage", default="lstm-ray-results", help="where NAME's folders are (storage.path)")
    errored = resume.add_mutually_exclusive_group()
    errored.add_argument("--resume-errored", action="store_true", help="continue failed trials from a checkpoint")
    errored.add_argument("--restart-errored", action="store_true", help="train failed trials again from scratch")
    resume.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster, as for tune")
    resume.add_argument(
        "--trust-unsigned",
        action="store_true",
        help="resume a folder whose signatures are missing or do not match (docs/security.md): only when you trust "
        "everyone who can write it",
    )
    resume.add_argument("--verbose", action="store_true", help="show Ray's trial table and worker logs")
    resume.set_defaults(run=run_resume)

    validate = commands.add_parser("validate", help="check a config and its data without starting Ray")
    _config_arguments(validate)
    validate.set_defaults(run=run_validate)

    report = commands.add_parser("report", help="write a sweep's HTML report (learning curves, importance, ...)")
    report.add_argument("name", help="MLflow experiment name, or the sweep's experiment YAML file")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: the config's, or sqlite:///mlflow.db)")
    report.add_argument("--storage", help="storage path whose unsent MLflow writes are sent first (default: config's)")
    report.add_argument("--run", dest="run_id", help="the sweep's parent run id (default: the latest sweep)")
    report.add_argument("--out", help="output folder (default: lstm-ray-reports/EXPERIMENT/RUN)")
    report.set_defaults(run=run_report)

    replay = commands.add_parser("replay", help="replay a recorded sweep's curves under another tuning policy")
    replay.add_argument("sweep", metavar="SWEEP", help="MLflow experiment (its latest sweep) or a parent run id")
    replay.add_argument("--set", dest="overrides", action="append", default=[], metavar="search.KEY=VALUE",
                        help="change a search setting, e.g. --set search.reduction_factor=3 (repeatable)")  # fmt: skip
    replay.add_argument("--slots", type=int, help="trials at once (default: as many as the sweep ran)")
    replay.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI")
    replay.set_defaults(run=run_replay)

    datasets = commands.add_parser("datasets", help="list the bundled data sets (use as data.source: builtin:NAME)")
    datasets.set_defaults(run=run_datasets)

    dashboard = {"default": os.environ.get("RAY_API_SERVER_ADDRESS"), "metavar": "http://HEAD:8265"}
    dashboard["help"] = "the head's dashboard (Jobs API); default: RAY_API_SERVER_ADDRESS"
    submit = commands.add_parser("submit", help="run a sweep on a Ray cluster as a Ray job")
    _config_arguments(submit)
    submit.add_argument("--address", **dashboard)
    submit.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    submit.set_defaults(run=run_submit)

    status = commands.add_parser("status", help="a submitted sweep's job status")
    status.add_argument("job", metavar="JOB", help="the job id `lstm-ray submit` printed")
    status.add_argument("--address", **dashboard)
    status.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    status.set_defaults(run=run_status)

    stop = commands.add_parser("stop", help="stop a submitted sweep (saved for `lstm-ray resume`)")
    stop.add_argument("job", metavar="JOB", help="the job id `lstm-ray submit` printed")
    stop.add_argument("--address", **dashboard)
    stop.set_defaults(run=run_stop)

    preflight = commands.add_parser("preflight", help="check a cluster can run a sweep: resources, storage, MLflow")
    _config_arguments(preflight)
    preflight.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        help="http://HEAD:8265 (runs as a job on the head) or a Ray address (auto, HOST:PORT) from a cluster node",
    )
    preflight.add_argument("--timeout", type=float, default=20.0, help="seconds a probe on a live node may take")
    preflight.add_argument(
        "--node-wait", type=float, default=600.0, help="seconds to wait for the autoscaler when no node fits a trial"
    )
    preflight.set_defaults(run=run_preflight)
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
    from lstm_ray.api import checked_data
    from lstm_ray.config import load_config

    cfg = load_config(args.config, args.overrides)
    return cfg, checked_data(cfg)


def run_validate(args: argparse.Namespace) -> int:
    cfg, data = load_checked(args)
    summary, *details = data.report()
    print(
        f"OK: {cfg.name}: {redact(cfg.data.source)}, {summary}, "
        f"{len(cfg.search.space)} searched parameters, {cfg.search.num_samples} trials"
    )
    for line in [*details, *filled_gaps(cfg.data.missing, data), *uri_secrets(cfg)]:
        print(f"  {line}")
    from lstm_ray.sweep.comparison import baseline_bar

    for line in baseline_bar(cfg, data):
        print(f"  {line}")
    from lstm_ray.search.cost import sweep_cost_lines

    for line in sweep_cost_lines(cfg, data):  # search.budget / search.prices: before anything is spent
        print(f"  {line}")
    return 0


def uri_secrets(cfg) -> list[str]:
    """A note for each URI of the config that carries a password or a secret option, which lstm-ray masks."""
    uris = {"tracking.uri": cfg.tracking.uri, "data.source": cfg.data.source}
    return [
        f"{key}: its credentials are masked wherever lstm-ray logs, saves or prints it; pass them in the "
        "environment instead (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, AWS_* for s3://)"
        for key, uri in uris.items()
        if redact(uri) != uri
    ]


def filled_gaps(missing: str, data) -> list[str]:
    """A line counting the target values the source lacks and what data.missing does with them (none when
    nothing is missing, or with drop, whose dropped rows the data report already counts)."""
    if data.observed is None or data.observed.all() or missing == "drop":
        return []
    absent = (~data.observed).sum(axis=0)
    counts = ", ".join(f"{int(n)} of {name!r}" for name, n in zip(data.row_spec.targets, absent, strict=True) if n)
    done = {
        "interpolate": "filled by interpolate (linear between the known neighbours)",
        "ffill": "filled by ffill (the last known value)",
        "mask": "skipped as targets by mask (inputs flagged and filled)",
    }[missing]
    return [f"data.missing: {counts} values missing in the source, {done}"]


def run_datasets(args: argparse.Namespace) -> int:
    """Each bundled set: size and licence, what it holds, its columns by role and a `data:` line to paste."""
    from lstm_ray.data.builtin import describe_builtin

    for row in describe_builtin():
        roles = ", ".join(
            f"{key} {row[key]}" for key in ("target", "id_column", "time_column", "split_column") if row[key]
        )
        print(
            f"builtin:{row['name']}  {row['task']}, {row['rows']} rows x {row['columns']} columns, "
            f"{row['size_kb']} KB, licence {row['licence']}\n  {row['description']}\n  source: {row['source']}\n"
            f"  columns: {roles}; features {', '.join(row['features'])}\n  config:  {row['config']}"
        )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from lstm_ray.reports import report_sweep

    page = report_sweep(
        args.name, tracking_uri=args.tracking_uri, storage=args.storage, run_id=args.run_id, out=args.out
    )
    print(f"Report: {page.resolve()}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from lstm_ray.sweep.replay import replay_sweep

    comparison = replay_sweep(args.sweep, args.overrides, slots=args.slots, tracking_uri=args.tracking_uri)
    print("\n".join(comparison.lines()))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from lstm_ray.api import tune  # every input error surfaces there, before Ray is imported

    overrides = args.overrides + ([f"search.pick={json.dumps(args.pick)}"] if args.pick is not None else [])
    result = tune(args.config, args.address, overrides=overrides, verbose=args.verbose)
    print_summary(result.summary, result.tracking_uri)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from lstm_ray.cluster.job_handle import submit_sweep

    job = submit_sweep(args.config, args.address, args.overrides)  # validates first: bad input submits nothing
    print("\n".join(job.submitted_lines()))
    return job.follow(print) if args.follow else 0


def run_status(args: argparse.Namespace) -> int:
    from lstm_ray.cluster.job_handle import SweepJob

    job = SweepJob.attach(args.job, args.address)
    if args.follow:
        return job.follow(print)
    print("\n".join(job.describe()))
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop the job and print how it ended; exit 1 when it still runs after the driver's grace time."""
    from lstm_ray.cluster.job_handle import SweepJob

    job = SweepJob.attach(args.job, args.address)
    code = 0
    try:
        job.stop()
    except TimeoutError as err:
        print(f"warning: {err}", file=sys.stderr)
        code = 1
    print("\n".join(job.describe()))
    return code


def run_preflight(args: argparse.Namespace) -> int:
    from lstm_ray.cluster.preflight import preflight

    return preflight(
        args.config, args.overrides, args.address, print, timeout_s=args.timeout, node_wait_s=args.node_wait
    )


def run_resume(args: argparse.Namespace) -> int:
    from lstm_ray.api import resume  # a wrong name or folder is one error line, before Ray

    result = resume(
        args.sweep,
        storage=args.storage,
        restart_errored=args.restart_errored,
        resume_errored=args.resume_errored,
        address=args.address,
        verbose=args.verbose,
        trust_unsigned=args.trust_unsigned,
    )
    print_summary(result.summary, result.tracking_uri)
    return 0


def print_counts(summary) -> None:
    counts = summary.counts
    minutes, seconds = divmod(int(summary.elapsed_s), 60)
    print(
        f"\nSweep {summary.name}: {sum(counts.values())} trials in {minutes}m{seconds:02d}s "
        f"({counts['completed']} completed, {counts['stopped_early']} stopped early, {counts['failed']} failed)"
    )


def print_failed_sweep(failed: SweepFailed) -> None:
    """The closing lines of a sweep no trial of which reported its metric: counts, each reason with the trials it
    hit, where MLflow and Tune keep the rest; then one `error:` line on stderr."""
    summary = failed.summary
    print_counts(summary)
    print(f"No trial reported {summary.metric}, so there is no winner. Why the trials ended:")
    for line in reason_lines(failed.reasons):
        print(f"  {line}")
    if summary.parent_run_id:
        print(f"MLflow: parent run {summary.parent_run_id} closed FAILED (the reasons are in its failures.txt)")
    print(f"Results and checkpoints: {summary.storage_path}")
    if summary.parent_run_id:
        print(f"Review the sweep: {review_command(failed.tracking_uri)}")
    print(f"error: sweep {summary.name} failed: no trial reported {summary.metric} (reasons above)", file=sys.stderr)


def print_summary(summary, tracking_uri: str) -> None:
    print_counts(summary)
    for trial_id, reason in summary.failures.items():
        print(f"  failed {trial_id}: {reason}")
    picked = "Picked" if summary.pick_line.startswith("Picked") else "Best"  # search.pick chose a front member
    print(f"{picked} trial: {summary.metric} = {summary.best_value:.5g}")
    if summary.tie_note:
        print(f"  ({summary.tie_note})")
    for key, value in sorted(summary.best_params.items()):
        print(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    if summary.reevaluation:
        print(f"Re-evaluated with train.seed {summary.reevaluation.seeds} (mean +- std of {summary.metric}):")
        for rank, c in enumerate(summary.reevaluation.candidates, 1):
            values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.params.items())
            print(f"  {rank}. {c.mean:.5g} +- {c.std:.2g}  (sweep {c.sweep_value:.5g})  {values}")
    from lstm_ray.sweep.front_choice import front_lines  # search.objectives: the front, search.pick's choice

    for line in front_lines(summary):
        print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)
    print("Winner on the held-out test split: " + ", ".join(f"{k} = {v:.5g}" for k, v in summary.test_metrics.items()))
    for line in summary.comparison.lines() if summary.comparison else []:
        print(line if line.startswith("WARNING") else f"Against the naive baselines: {line}")
    if not summary.parent_run_id:
        print("MLflow: off (tracking.enabled: false)")
    else:
        model = summary.model_uri or "not logged yet: MLflow was unreachable (`lstm-ray report` sends it)"
        print(f"MLflow: parent run {summary.parent_run_id}, best model {model}")
    print(f"Results and checkpoints: {summary.storage_path}")
    if summary.parent_run_id:
        print(f"Review the sweep: {review_command(tracking_uri)}")


def review_command(tracking_uri: str) -> str:
    """How to open the sweep in MLflow from where the user is: the server's address, or `mlflow ui` by the path
    of the `mlflow` installed beside this lstm-ray (a venv's bin is rarely on PATH), and `make ui` in a checkout.
    Never with a password: a server's address without its credentials, a database's masked."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {split_credentials(tracking_uri)[0]} in a browser"
    store = redact(absolute_tracking_uri(tracking_uri))
    command = f"{venv_executable('mlflow')} ui --backend-store-uri {store}"
    makefile = Path("Makefile")  # a checkout's `make ui` opens ./mlflow.db, the quickstart's store
    if store == absolute_tracking_uri("sqlite:///mlflow.db") and makefile.is_file() and "\nui:" in makefile.read_text():
        command += "   (or: make ui)"
    return command


def venv_executable(name: str) -> str:
    """`name` as the shell finds it when it is on PATH and the one beside this Python; else that one's path,
    relative when it lies under the working directory (`.venv/bin/mlflow`). Just `name` if neither exists."""
    beside = Path(sys.executable).parent / name  # not resolved: a venv's python is a link to the base one
    if not beside.is_file():
        return name
    on_path = shutil.which(name)
    if on_path and Path(on_path).resolve() == beside.resolve():
        return name
    absolute = beside.absolute()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


def absolute_tracking_uri(uri: str) -> str:
    """sqlite:///relative.db made absolute, so the printed `mlflow ui` command works from any directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


if __name__ == "__main__":
    run()
