"""Continue an interrupted sweep (driver killed, Ctrl-C) from its storage folder.

    lstm-ray resume quickstart                        # the latest quickstart-* folder under storage.path
    lstm-ray resume lstm-ray-results/quickstart-20261123-191407 --restart-errored

Every sweep writes `lstm-ray-sweep.json` into its folder (`storage.path/<name>-<timestamp>`) before it starts:
the validated config, the MLflow parent run and the directory it ran from. A resume restores Tune's own
experiment state (`Tuner.restore`: finished trials stay finished, unfinished ones continue from their last
checkpoint, the searcher keeps what it learned), reopens the same parent run and continues each trial's child
run instead of opening a new one (a run the interrupt ended KILLED, tagged `lstm_ray.resumes`, is RUNNING
again). The parent run ends FINISHED when the sweep does; from here on a resumed sweep ends as a new one does
(`tuning.complete_sweep`). Before anything is unpickled, the folder's state files are checked against the
signatures its driver wrote (`signing.verify_sweep`, docs/security.md).
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from lstm_ray.storage import find_sweep, load_resume_info
from lstm_ray.sweep.signing import Signatures, verify_sweep

if TYPE_CHECKING:
    from lstm_ray.sweep.finish import SweepSummary

log = logging.getLogger(__name__)


def resume_sweep(
    name_or_path: str,
    *,
    storage: str = "lstm-ray-results",
    restart_errored: bool = False,
    resume_errored: bool = False,
    address: str | None = None,
    verbose: bool = False,
    trust_unsigned: bool = False,
) -> SweepSummary:
    """Continue the sweep `name_or_path` names to its end; returns its summary.

    Errored trials stay failed unless `resume_errored` (continue from their last checkpoint) or
    `restart_errored` (train them again from scratch). Raises KeyboardInterrupt when interrupted again, and
    ConfigError before anything is unpickled when the folder's state files are not the ones its driver signed
    (`signing.verify_sweep`; `trust_unsigned` skips that check).
    """
    folder = find_sweep(name_or_path, storage)
    verified = verify_sweep(folder, trust_unsigned)
    # Imported here, not with the module: the CLI imports it and reports a wrong sweep name before Ray loads.
    from ray import tune

    from lstm_ray.data.dataset import prepare_sweep_data
    from lstm_ray.sweep.tuning import complete_sweep, prepare_tune, trainable
    from lstm_ray.tracking.callbacks import OutcomeCounter, TrialLogger
    from lstm_ray.tracking.sweep import SweepTracker, UntrackedSweep

    cfg, parent_run_id, cwd = load_resume_info(folder)
    if Path(cwd).is_dir():
        os.chdir(cwd)  # relative paths in the config (data, tracking.uri) mean what they meant at the start
    started = time.monotonic()
    data = prepare_sweep_data(cfg)
    slots = prepare_tune(cfg, address, verbose)
    snapshot = tune.ExperimentAnalysis(folder)
    continues_from = checkpoint_epochs(snapshot.trials) | recover_deleted_checkpoints(snapshot.trials)
    tuner = tune.Tuner.restore(
        folder, trainable(cfg, data), resume_errored=resume_errored, restart_errored=restart_errored
    )
    # Tune unpickled the sweep's callbacks; the TrialLogger among them re-finds the existing child runs.
    callbacks = tuner._local_tuner.get_run_config().callbacks
    sign_resumed(callbacks, verified)
    logger = next((c for c in callbacks if isinstance(c, TrialLogger)), None)
    if logger is None:  # tracking.enabled: false
        tracker = UntrackedSweep(next(c for c in callbacks if isinstance(c, OutcomeCounter)))
    else:
        tracker = SweepTracker.reattach(cfg, parent_run_id, logger)
        tracker.forget_trials({trial.trial_id for trial in snapshot.trials})
        logger.continue_runs(snapshot.trials, saved_results(snapshot), continues_from)
    return complete_sweep(cfg, data, tuner, tracker, slots=slots, verbose=verbose, started=started)


def sign_resumed(callbacks: list[Any], verified: Signatures) -> None:
    """The restored sweep's signer (a new one for a sweep from before signing) carries on from the `verified`
    digests of the folder."""
    from lstm_ray.sweep.signer import SweepSigner

    signer = next((c for c in callbacks if isinstance(c, SweepSigner)), None)
    if signer is None:
        signer = SweepSigner()
        callbacks.append(signer)
    signer.carry_over(verified)


def recover_deleted_checkpoints(trials: list[Any]) -> dict[str, int]:
    """Trial id -> the epoch it continues from, for each unfinished trial whose latest checkpoint in Tune's
    snapshot is gone from storage.

    Tune deletes a trial's surplus checkpoints as soon as a new one arrives but snapshots the experiment later,
    so a driver killed in between leaves a snapshot naming a deleted checkpoint, and restoring the trial fails
    ("does not exist on storage anymore"; ray-project/ray#27790, whose fallback Ray 2 no longer has). The
    trial's newest checkpoint, saved after the snapshot, is moved into the deleted one's place: the trial goes on
    from there, and Tune's next checkpoint, numbered after the deleted one, finds its folder free.
    """
    from lstm_ray.sweep.trainable import load_checkpoint_state

    recovered = {}
    for trial in trials:
        lost = trial.checkpoint
        if trial.status == "TERMINATED" or lost is None or _exists(lost.filesystem, lost.path):
            continue
        newest = _newest_checkpoint(lost.filesystem, posixpath.dirname(lost.path))
        if newest is None or posixpath.basename(newest) < posixpath.basename(lost.path):
            continue
        lost.filesystem.create_dir(lost.path)
        pafs.copy_files(newest, lost.path, source_filesystem=lost.filesystem, destination_filesystem=lost.filesystem)
        lost.filesystem.delete_dir(newest)  # a move: S3 cannot rename a folder
        recovered[trial.trial_id] = int(load_checkpoint_state(lost)["epoch"])
        log.warning(
            "trial %s: Tune's last snapshot names %s, deleted after it; the trial continues from its newest "
            "checkpoint, %s (epoch %d)",
            trial.trial_id,
            posixpath.basename(lost.path),
            posixpath.basename(newest),
            recovered[trial.trial_id],
        )
    return recovered


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _newest_checkpoint(fs: pafs.FileSystem, trial_folder: str) -> str | None:
    found = [
        info.path
        for info in fs.get_file_info(pafs.FileSelector(trial_folder, allow_not_found=True))
        if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")
    ]
    return max(found, key=posixpath.basename, default=None)


def checkpoint_epochs(trials: list[Any]) -> dict[str, int]:
    """Trial id -> the epoch of the checkpoint Tune's snapshot restores each unfinished trial from."""
    return {
        trial.trial_id: int(trial.latest_checkpoint_result.metrics.get("epoch", 0))
        for trial in trials
        if trial.status != "TERMINATED" and trial.latest_checkpoint_result is not None
    }


def saved_results(snapshot: Any) -> dict[str, list[dict[str, Any]]]:
    """Trial id -> the results Tune stored for it (an `ExperimentAnalysis` of the sweep), without the gaps
    (NaN) a table puts where a result lacked a column."""
    return {
        trial_id: [_without_gaps(row) for row in frame.to_dict("records")]
        for trial_id, frame in snapshot.trial_dataframes.items()
    }


def _without_gaps(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not (isinstance(value, float) and math.isnan(value))}
