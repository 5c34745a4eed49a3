"""Signatures of the files in a sweep folder that `lstm-ray resume` would unpickle, so that a resume never runs code
someone planted in the results storage.

    key = resume_key(create=True)                       # ~/.config/lstm-ray/resume.key, or LSTM_RAY_RESUME_KEY
    signatures = Signatures(); signatures.record("tuner.pkl", data, key)
    write_signatures(fs, root, signatures, key, complete=True)      # fs, root: the folder on its filesystem
    verify_folder(fs, root, key, folder)                # ConfigError("resume", ...) unless every state file matches

Tune restores a sweep by unpickling its state (`tuner.pkl`, `searcher-state-*.pkl`, `callback-states-*.pkl`, the
cloudpickled fields of `experiment_state-*.json`, a trial's `params.pkl` and `error.pkl`): a crafted file there runs
code as whoever resumes. The driver records an HMAC-SHA256 of each such file as Tune writes it (`SweepSigner`, in
sweep/signer.py) into `lstm-ray-signatures.json`; the key stays outside the storage, in the user's config
directory. A resume first checks that every state file in the folder is one the driver wrote (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from lstm_ray.errors import ConfigError
from lstm_ray.storage import as_uri

SIGNATURES_FILE = "lstm-ray-signatures.json"
PARTIAL = ".partial"  # SIGNATURES_FILE being written, on a local or NFS folder
KEY_ENV = "LSTM_RAY_RESUME_KEY"  # the key itself, for a cluster whose machines share one secret
HISTORY = 3  # versions kept per file: Tune uploads a snapshot while the driver signs the next one
TRUST_FIX = "pass --trust-unsigned if you trust everyone who can write the folder"


def key_path() -> Path:
    """Where the resume key lives: $XDG_CONFIG_HOME/lstm-ray/resume.key, else ~/.config/lstm-ray/resume.key."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "lstm-ray" / "resume.key"


def resume_key(create: bool = False) -> bytes | None:
    """The key that signs sweep folders: LSTM_RAY_RESUME_KEY, else the key file; with `create`, a new random key
    written to the key file (mode 0600) when there is none. None when there is no key and `create` is false."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = key_path()
    if not path.is_file() and create:
        try:
            _create_key(path)
        except OSError as err:
            raise ConfigError(
                "resume",
                f"cannot create the resume key {path}: {err.strerror}; set {KEY_ENV}, or XDG_CONFIG_HOME to a "
                "folder you can write",
            ) from None
    return path.read_text().strip().encode() if path.is_file() else None


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another sweep created it first
        return
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))


def is_state_file(relative: str) -> bool:
    """Whether Tune may unpickle the file at `relative` (a path inside the sweep folder) on resume: any pickle, and
    the folder's own JSON files (experiment state with cloudpickled fields, searcher state, the resume info)."""
    parts = relative.split("/")
    if parts[-1] == SIGNATURES_FILE:
        return False
    return parts[-1].endswith(".pkl") or (len(parts) == 1 and parts[-1].endswith(".json"))


def digest(key: bytes, relative: str, data: bytes) -> str:
    """HMAC-SHA256 of a file's path in the folder and its bytes: a signed file moved elsewhere does not match."""
    return hmac.new(key, relative.encode() + b"\0" + data, hashlib.sha256).hexdigest()


@dataclass
class Signatures:
    """Path in the sweep folder -> digests of the versions the driver wrote (newest last, at most HISTORY)."""

    files: dict[str, list[str]] = field(default_factory=dict)

    def record(self, relative: str, data: bytes, key: bytes) -> bool:
        """Add the version `data` of `relative`; whether it is new."""
        versions = self.files.setdefault(relative, [])
        signed = digest(key, relative, data)
        if signed in versions:
            return False
        versions[:] = [*versions, signed][-HISTORY:]
        return True


def write_signatures(fs: pafs.FileSystem, root: str, signatures: Signatures, key: bytes, complete: bool) -> None:
    """Write `signatures` into the sweep folder `root` on `fs`, sealed with `key`. `complete`: written when Tune's
    storage holds every file the driver wrote (its final, waited-for upload), so a signed file that goes missing
    afterwards means someone removed it."""
    body = {"complete": complete, "files": signatures.files}
    document, target = json.dumps(body | {"mac": _seal(key, body)}, indent=1).encode(), f"{root}/{SIGNATURES_FILE}"
    if not isinstance(fs, pafs.LocalFileSystem):  # an object store shows an object only once it is whole
        with fs.open_output_stream(target) as out:
            out.write(document)
        return
    # A driver killed mid-write would leave the file cut short, and the sweep refused: write aside, then rename.
    with fs.open_output_stream(f"{target}{PARTIAL}") as out:
        out.write(document)
    fs.move(f"{target}{PARTIAL}", target)


def verify_folder(fs: pafs.FileSystem, root: str, key: bytes, shown: str) -> Signatures:
    """Check that every state file in the sweep folder `root` on `fs` is a version its driver signed with `key`,
    that no unsigned one appeared and (when the signatures are complete) that none was removed; returns the
    digests of the files as they are. Raises ConfigError("resume", ...) naming the first file that fails (under
    `shown`, the folder as the user named it) and the fix. Reads the files; unpickles nothing."""
    body = _read_signatures(fs, root, shown, key)
    current = folder_signatures(fs, root, key)
    for relative, (signed,) in sorted(current.files.items()):
        if relative not in body["files"]:
            _refuse(f"{shown}/{relative} appeared after the sweep signed its folder")
        # A driver killed while Tune uploads leaves the file empty: no pickle opcode, so no code, in it.
        if signed not in body["files"][relative] and signed != digest(key, relative, b""):
            _refuse(f"{shown}/{relative} changed since the sweep wrote it")
    missing = sorted(set(body["files"]) - set(current.files))
    if body["complete"] and missing:
        _refuse(f"{shown}/{missing[0]} was removed since the sweep wrote it")
    return current


def folder_signatures(fs: pafs.FileSystem, root: str, key: bytes) -> Signatures:
    """The digest of every state file in the sweep folder `root` on `fs` as it is now."""
    signatures = Signatures()
    prefix = root.rstrip("/") + "/"
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = info.path.removeprefix(prefix)
        if info.type == pafs.FileType.File and is_state_file(relative):
            with fs.open_input_stream(info.path) as stream:
                signatures.record(relative, stream.read(), key)
    return signatures


def _read_signatures(fs: pafs.FileSystem, root: str, folder: str, key: bytes) -> dict:
    try:
        with fs.open_input_stream(f"{root}/{SIGNATURES_FILE}") as stream:
            document = json.loads(stream.read())
    except FileNotFoundError:
        raise ConfigError(
            "resume",
            f"{folder} holds no {SIGNATURES_FILE} (a sweep from before lstm-ray signed its folders, or a driver "
            f"killed before it signed), so its pickles cannot be trusted and nothing was run; {TRUST_FIX}",
        ) from None
    except ValueError:
        document = None
    document = document if isinstance(document, dict) else {}
    body = {k: document.get(k) for k in ("complete", "files")}
    valid = isinstance(body["files"], dict) and all(isinstance(v, list) for v in body["files"].values())
    if not (valid and hmac.compare_digest(str(document.get("mac", "")), _seal(key, body))):
        _refuse(f"{folder}/{SIGNATURES_FILE} changed since the sweep wrote it, or was signed with another key")
    return body


def _seal(key: bytes, body: dict) -> str:
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _refuse(what: str) -> None:
    raise ConfigError(
        "resume",
        f"{what}, so resuming could run code planted in the results storage and nothing was run; restore the folder "
        f"from a copy you trust, or {TRUST_FIX}",
    )


def verify_sweep(folder: str, trust_unsigned: bool = False) -> Signatures:
    """What `lstm-ray resume` checks before anything unpickles: `verify_folder` with this machine's key; returns the
    digests of the folder's state files, which the resumed sweep's signer carries on. Raises ConfigError("resume",
    ...) when the key is missing or the folder fails; `trust_unsigned` skips the check (and signs the folder as it
    is, with a key made when there is none)."""
    fs, root = pafs.FileSystem.from_uri(as_uri(folder))
    key = resume_key(create=trust_unsigned)
    if key is None:
        raise ConfigError(
            "resume",
            f"no resume key on this machine ({key_path()} is missing and {KEY_ENV} unset), so nothing was run; copy "
            f"resume.key from the machine that ran the sweep there (mode 0600), set {KEY_ENV} to the cluster's key, "
            f"or {TRUST_FIX}",
        )
    if trust_unsigned:
        return folder_signatures(fs, root, key)
    return verify_folder(fs, root, key, folder)
