"""Resume trusts nothing in the results storage: a pickle planted in a sweep folder is refused before anything
unpickles it (lstm_ray/sweep/signing.py, docs/security.md)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml
from cli_runs import cli, finish, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto_s3 import moto_s3
from resume_runs import resumable_sweep

from lstm_ray.errors import ConfigError
from lstm_ray.sweep.signing import (
    SIGNATURES_FILE,
    Signatures,
    folder_signatures,
    key_path,
    verify_folder,
    verify_sweep,
    write_signatures,
)


class Planted:
    """A pickle that writes `marker` when unpickled: what an attacker with write access to the storage plants."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.fixture(scope="module")
def config_home(tmp_path_factory):
    """This module's own key directory, as XDG_CONFIG_HOME for the sweeps it starts and the checks it makes."""
    home = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(home))
        patch.delenv("LSTM_RAY_RESUME_KEY", raising=False)
        yield home


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, config_home) -> Path:
    """A real sweep (2 trials of HyperOpt, 1 epoch, no MLflow) run to its end; its folder, not to be changed."""
    workdir = tmp_path_factory.mktemp("sweep")
    path = workdir / "tiny.yaml"
    resumable_sweep(path, "sqlite:///mlflow.db", "results")
    raw = yaml.safe_load(path.read_text())
    raw["train"] |= {"max_epochs": 1, "batch_size": 128}
    raw["search"] |= {"num_samples": 2, "n_initial_points": 1}
    raw["tracking"] = {"enabled": False}
    path.write_text(yaml.safe_dump(raw))
    out = finish(cli("tune", str(path), cwd=workdir))
    assert "2 trials in" in out, out[-3000:]
    (folder,) = (workdir / "results").iterdir()
    return folder


@pytest.fixture
def sweep_copy(finished_sweep, tmp_path) -> Path:
    """A copy of the finished sweep's folder for one test to change (signatures name paths inside the folder)."""
    return Path(shutil.copytree(finished_sweep, tmp_path / "results" / finished_sweep.name))


@pytest.mark.slow
def test_a_sweep_signs_its_state_files_with_a_private_key(finished_sweep, config_home):
    signed = json.loads((finished_sweep / SIGNATURES_FILE).read_text())
    assert signed["complete"] is True
    names = {Path(p).name.split("-20")[0] for p in signed["files"]}
    assert {"tuner.pkl", "lstm-ray-sweep.json", "experiment_state", "searcher-state", "params.pkl"} <= names
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600 and key_path().is_relative_to(config_home)
    verify_sweep(str(finished_sweep))


def planted_targets(folder: Path) -> dict[str, Path]:
    return {
        "tuner.pkl": folder / "tuner.pkl",
        "searcher state": next(folder.glob("searcher-state-*.pkl")),
        "a trial's params.pkl": next(folder.glob("*/params.pkl")),
        "a newer searcher state": folder / "searcher-state-2099-01-01_00-00-00.pkl",  # Tune restores the newest
    }


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tuner.pkl", "searcher state", "a trial's params.pkl", "a newer searcher state"])
def test_a_planted_pickle_is_refused_before_anything_unpickles_it(sweep_copy, tmp_path, target):
    marker = tmp_path / "planted-code-ran"
    planted = planted_targets(sweep_copy)[target]
    planted.write_bytes(pickle.dumps(Planted(marker)))
    done = run_cli("resume", str(sweep_copy), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    first, *rest = done.stderr.splitlines()
    relative = planted.relative_to(sweep_copy).as_posix()
    assert first.startswith(f"error: resume: {sweep_copy}/{relative} ") and "--trust-unsigned" in first, first
    assert rest == ["NO_RAY"] and not marker.exists()


@pytest.mark.slow
def test_an_untouched_folder_resumes_and_stays_signed(sweep_copy, tmp_path):
    out = finish(cli("resume", str(sweep_copy), cwd=tmp_path))
    assert "2 trials in" in out and "error" not in out.lower(), out[-3000:]
    verify_sweep(str(sweep_copy))  # the resumed driver signed what it wrote


@pytest.mark.slow
def test_a_folder_from_before_signing_resumes_only_when_trusted(sweep_copy, tmp_path):
    (sweep_copy / SIGNATURES_FILE).unlink()
    done = run_cli("resume", str(sweep_copy), cwd=tmp_path)
    assert done.returncode == 2 and f"holds no {SIGNATURES_FILE}" in done.stderr, done.stderr[-3000:]
    out = finish(cli("resume", str(sweep_copy), "--trust-unsigned", cwd=tmp_path))
    assert "2 trials in" in out, out[-3000:]
    verify_sweep(str(sweep_copy))  # signed from now on


@pytest.mark.slow
def test_a_machine_without_the_key_refuses_with_the_fix(sweep_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "new-machine"))
    done = run_cli("resume", str(sweep_copy), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: resume: no resume key on this machine") and "LSTM_RAY_RESUME_KEY" in first, first


@pytest.mark.slow
def test_the_cluster_key_in_the_environment_signs_and_checks(sweep_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_RAY_RESUME_KEY", "a-cluster-secret")
    with pytest.raises(ConfigError, match="signed with another key"):
        verify_sweep(str(sweep_copy))  # the sweep was signed with the key file's key, not this one


# --- verify_folder, property-based: any change to a signed folder is refused, no change is accepted -----------

STATE_NAMES = st.sampled_from(
    ["tuner.pkl", "experiment_state-2026.json", "searcher-state-2026.pkl", "lstm-ray-sweep.json", "t1/params.pkl"]
)
FOLDERS = st.dictionaries(STATE_NAMES, st.binary(min_size=1, max_size=64), min_size=1)
KEY = b"k" * 32


def signed_folder(root: Path, files: dict[str, bytes]) -> None:
    signatures = Signatures()
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        signatures.record(relative, data, KEY)
    (root / "t1" / "checkpoint_000000").mkdir(parents=True, exist_ok=True)
    (root / "t1" / "checkpoint_000000" / "checkpoint.pt").write_bytes(b"weights only")  # never unpickled by Tune
    write_signatures(pafs.LocalFileSystem(), str(root), signatures, KEY, complete=True)


def verify(root: Path) -> None:
    verify_folder(pafs.LocalFileSystem(), str(root), KEY, str(root))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=FOLDERS, change=st.data())
def test_any_change_to_a_signed_file_set_is_refused(files, change):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        signed_folder(root, files)
        verify(root)  # untouched: accepted
        (root / "t1" / "checkpoint_000000" / "checkpoint.pt").write_bytes(b"a newer checkpoint")
        verify(root)  # checkpoints are torch weights, loaded weights_only: not state files
        kind = change.draw(st.sampled_from(["flip", "add", "remove", "seal"]))
        relative = change.draw(st.sampled_from(sorted(files)))
        path = root / relative
        if kind == "flip":
            data = bytearray(path.read_bytes())
            at = change.draw(st.integers(0, len(data) - 1))
            data[at] ^= change.draw(st.integers(1, 255))
            path.write_bytes(bytes(data))
        elif kind == "add":
            added = change.draw(
                st.from_regex(r"[a-z_]{1,12}(/[a-z_]{1,8})?\.pkl", fullmatch=True).filter(lambda p: p not in files)
            )
            (root / added).parent.mkdir(parents=True, exist_ok=True)
            (root / added).write_bytes(pickle.dumps(0))
        elif kind == "remove":
            path.unlink()
        else:  # the signature file itself rewritten to accept the attacker's version
            document = json.loads((root / SIGNATURES_FILE).read_text())
            document["files"][relative] = ["0" * 64]
            (root / SIGNATURES_FILE).write_text(json.dumps(document))
        with pytest.raises(ConfigError, match=r"^resume: .*(changed|appeared|removed)"):
            verify(root)


@settings(max_examples=30, deadline=None)
@given(files=FOLDERS, emptied=st.data())
def test_a_signed_file_a_killed_upload_left_empty_is_accepted(files, emptied):
    """A driver killed while Tune uploads can leave a state file empty: no pickle opcode, so nothing to run."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        signed_folder(root, files)
        (root / emptied.draw(st.sampled_from(sorted(files)))).write_bytes(b"")
        verify(root)


@settings(max_examples=30, deadline=None)
@given(files=FOLDERS)
def test_the_digests_a_resume_carries_on_are_the_folder_as_verified(files):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        signed_folder(root, files)
        current = folder_signatures(pafs.LocalFileSystem(), str(root), KEY)
        assert (
            set(current.files) == set(files)
            and verify_folder(pafs.LocalFileSystem(), str(root), KEY, folder) == current
        )


def test_the_key_file_is_made_private_once(tmp_path, monkeypatch):
    from lstm_ray.sweep.signing import resume_key

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("LSTM_RAY_RESUME_KEY", raising=False)
    assert resume_key() is None
    key = resume_key(create=True)
    assert key and resume_key() == key and resume_key(create=True) == key
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600 and os.stat(key_path().parent).st_mode & 0o077 == 0


@pytest.fixture
def s3_sweep(finished_sweep, monkeypatch):
    """The finished sweep's folder copied into a real local S3 (moto_server on loopback, stopped by its PID's
    group); its s3:// URI, reached through AWS_ENDPOINT_URL as a user's storage.path would be."""
    with moto_s3() as port:
        for variable, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
            monkeypatch.setenv(variable, value)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        s3 = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
        s3.create_dir("sweeps")
        pafs.copy_files(str(finished_sweep), f"sweeps/{finished_sweep.name}", destination_filesystem=s3)
        yield f"s3://sweeps/{finished_sweep.name}", s3


@pytest.mark.slow
def test_a_sweep_folder_on_s3_is_checked_the_same_way(s3_sweep, tmp_path):
    folder, s3 = s3_sweep
    verify_sweep(folder)
    with s3.open_output_stream(f"{folder.removeprefix('s3://')}/tuner.pkl") as out:
        out.write(pickle.dumps(Planted(tmp_path / "planted-code-ran")))
    with pytest.raises(ConfigError, match=f"^resume: {folder}/tuner.pkl changed since the sweep wrote it"):
        verify_sweep(folder)
    assert not (tmp_path / "planted-code-ran").exists()


def test_a_key_folder_that_cannot_be_written_is_one_error(tmp_path, monkeypatch):
    from lstm_ray.sweep.signing import resume_key

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "not-a-folder"))
    monkeypatch.delenv("LSTM_RAY_RESUME_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^resume: cannot create the resume key .*; set LSTM_RAY_RESUME_KEY"):
        resume_key(create=True)


SIGNING_LOOP = """
import sys
import pyarrow.fs as pafs
from lstm_ray.sweep.signing import Signatures, write_signatures
signatures, n = Signatures(), 0
print("writing", flush=True)
while True:  # ever more files signed, as a sweep's driver signs them
    n += 1
    signatures.record(f"t{n}/params.pkl", str(n).encode() * 50, b"k" * 32)
    write_signatures(pafs.LocalFileSystem(), sys.argv[1], signatures, b"k" * 32, complete=False)
"""


def test_a_driver_killed_while_it_writes_the_signatures_leaves_them_whole(tmp_path):
    """SIGKILL at random moments of a loop that rewrites the signatures: the file is always a whole, sealed
    version (it was found empty, refused, after a CI run's driver was killed in the middle of a write)."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from lstm_ray.sweep.signing import _read_signatures

    rng = random.Random(0)
    for _ in range(40):
        writer = subprocess.Popen([sys.executable, "-c", SIGNING_LOOP, str(tmp_path)], stdout=subprocess.PIPE)
        assert writer.stdout.readline() == b"writing\n"
        time.sleep(rng.uniform(0.01, 0.2))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        body = _read_signatures(pafs.LocalFileSystem(), str(tmp_path), str(tmp_path), KEY)  # raises if torn
        assert body["files"]
