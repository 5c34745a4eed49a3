"""The Tune callback that signs a sweep folder's state files as the driver writes them (signing.py says why).

    tuner = build_tuner(..., callbacks=[..., SweepSigner()])   # lstm-ray-signatures.json kept up to date

Tune writes its experiment state into a local staging folder on the driver, then uploads it to the sweep folder
in storage now and then. The signer hashes the staging copy (bytes this driver wrote, which nobody else can
change) after every controller step, so a driver killed at any moment leaves signatures of what it uploaded; when
the sweep ends or is interrupted, Tune's last upload has completed and the signatures are marked complete.
`tuner.pkl` and `lstm-ray-sweep.json`, written straight to storage before the sweep starts, are signed from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray import tune

from lstm_ray.storage import INFO_FILE
from lstm_ray.sweep.signing import SIGNATURES_FILE, Signatures, is_state_file, resume_key, write_signatures

WRITTEN_BEFORE_FIT = ("tuner.pkl", INFO_FILE)


class SweepSigner(tune.Callback):
    """Keeps `lstm-ray-signatures.json` in the sweep folder in step with the state files Tune writes.

    Pickled into `tuner.pkl` with the other callbacks, without its key or anything it learned: unpickled by a
    resume, it signs the resumed sweep from scratch with the resuming machine's key."""

    def __init__(self) -> None:
        self._key = resume_key(create=True)
        self._signatures = Signatures()
        self._seen: dict[str, tuple[int, int]] = {}  # staging file -> (mtime_ns, size) when last hashed
        self._written = False
        self._snapshot: list[tuple[str, int]] = []  # the staging folder's own files when last signed
        self._storage: Any = None  # Tune's StorageContext of the sweep, known from the first step

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def carry_over(self, signatures: Signatures) -> None:
        """Start from the digests a resume verified (or trusted): files of earlier runs that this driver does not
        write again, such as a finished trial's params.pkl, stay signed."""
        for relative, versions in signatures.files.items():
            self._signatures.files.setdefault(relative, []).extend(versions)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if trials:
            self._storage = trials[0].storage

    def get_state(self) -> None:
        # Tune asks for the callbacks' states after it wrote the experiment and searcher state to staging and before
        # it uploads them: signed here, they never reach the storage unsigned, even if the driver dies right after.
        if self._storage is not None:
            self._sign(self._storage, complete=False)
        return None

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if trials:  # the callback states Tune wrote after get_state
            self._sign(trials[0].storage, complete=False)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        # Tune calls this after its final upload, which it waits for (also after a Ctrl-C).
        if trials:
            self._sign(trials[0].storage, complete=True)

    def _sign(self, storage: Any, complete: bool) -> None:
        staging = Path(storage.experiment_driver_staging_path)
        snapshot = _top_level(staging)
        if snapshot == self._snapshot and self._written and not complete:
            return  # Tune writes (and uploads) only with a new snapshot of its experiment state
        self._snapshot = snapshot
        changed = self._sign_staged(staging)
        if not self._written:
            changed |= self._sign_stored(storage.storage_filesystem, storage.experiment_fs_path)
        if changed or complete:
            # Not in staging: Tune's uploads, which copy staging over the storage (no atomic write), would put
            # back the copy a resume downloaded, or leave it cut short by a kill.
            (staging / SIGNATURES_FILE).unlink(missing_ok=True)
            write_signatures(
                storage.storage_filesystem, storage.experiment_fs_path, self._signatures, self._key, complete
            )
            self._written = True

    def _sign_staged(self, staging: Path) -> bool:
        changed = False
        for parent, _, names in os.walk(staging):
            for name in names:
                path = Path(parent, name)
                relative = path.relative_to(staging).as_posix()
                stat = path.stat()
                if not is_state_file(relative) or self._seen.get(relative) == (stat.st_mtime_ns, stat.st_size):
                    continue
                self._seen[relative] = (stat.st_mtime_ns, stat.st_size)
                changed |= self._signatures.record(relative, path.read_bytes(), self._key)
        return changed

    def _sign_stored(self, fs: Any, folder: str) -> bool:
        changed = False
        for name in WRITTEN_BEFORE_FIT:
            with fs.open_input_stream(f"{folder}/{name}") as stream:
                changed |= self._signatures.record(name, stream.read(), self._key)
        return changed


def _top_level(staging: Path) -> list[tuple[str, int]]:
    """(name, mtime_ns) of the files directly in the staging folder: a new experiment snapshot changes them."""
    if not staging.is_dir():
        return []
    files = [entry for entry in os.scandir(staging) if entry.is_file() and entry.name != SIGNATURES_FILE]
    return sorted((entry.name, entry.stat().st_mtime_ns) for entry in files)
