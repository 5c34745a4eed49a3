"""Where a sweep's files live: its folder under `storage.path` (a local path or a pyarrow URI such as
s3://bucket/prefix) and the resume info file in it.

    folder = sweep_folder_name(cfg)                  # quickstart-20261206-182233
    save_resume_info(as_uri(cfg.storage.path), folder, cfg, parent_run_id)
    cfg, parent_run_id, cwd = load_resume_info(find_sweep("quickstart", "lstm-ray-results"))

Every sweep writes `lstm-ray-sweep.json` into its folder before it starts: the validated config, the MLflow parent
run and the directory it ran from, which is all `lstm-ray resume` needs besides Tune's own experiment state.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow.fs as pafs

from lstm_ray.config import ExperimentConfig, parse_config
from lstm_ray.config.rules import check_storage_path
from lstm_ray.errors import ConfigError, one_line
from lstm_ray.redaction import redact_values

INFO_FILE = "lstm-ray-sweep.json"


def as_uri(path: str) -> str:
    """A URI (kept as it is) or a local path made absolute: what pyarrow, Tune and MLflow take alike.

    >>> as_uri("s3://bucket/results")
    's3://bucket/results'
    """
    return path if "://" in path else str(Path(path).resolve())


def sweep_folder_name(cfg: ExperimentConfig) -> str:
    """`<name>-<YYYYmmdd-HHMMSS>`: sorts by time, which `find_sweep` relies on."""
    return f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def save_resume_info(storage: str, name: str, cfg: ExperimentConfig, parent_run_id: str) -> None:
    """Write what `lstm-ray resume` needs into the sweep's folder `storage`/`name` (local path or URI). URIs in the
    config are saved with their credentials masked: a resume takes them from the environment."""
    fs, root = pafs.FileSystem.from_uri(as_uri(storage))
    folder = f"{root}/{name}"
    fs.create_dir(folder, recursive=True)
    info = {"config": redact_values(cfg.to_dict()), "parent_run_id": parent_run_id, "cwd": os.getcwd()}
    with fs.open_output_stream(f"{folder}/{INFO_FILE}") as out:
        out.write(json.dumps(info, indent=1, default=str).encode())


def load_resume_info(folder: str) -> tuple[ExperimentConfig, str, str]:
    """(config, parent run id, working directory) of the sweep in `folder`."""
    fs, root = pafs.FileSystem.from_uri(as_uri(folder))
    try:
        with fs.open_input_stream(f"{root}/{INFO_FILE}") as stream:
            info = json.loads(stream.read())
    except (FileNotFoundError, OSError):
        raise ConfigError(
            "NAME_OR_PATH", f"{folder} holds no {INFO_FILE}; pass a folder an lstm-ray sweep wrote, or its name"
        ) from None
    except ValueError as err:  # cut short (a full disk, a copy stopped half way) or not JSON
        raise ConfigError("NAME_OR_PATH", f"{folder}/{INFO_FILE} is {_unreadable(err)}") from None
    if not isinstance(info, dict) or not {"config", "parent_run_id", "cwd"} <= info.keys():
        raise ConfigError("NAME_OR_PATH", f"{folder}/{INFO_FILE} is {_unreadable('config, parent_run_id or cwd')}")
    return parse_config(info["config"]), info["parent_run_id"], info["cwd"]


def _unreadable(why: object) -> str:
    return (
        f"truncated or incomplete ({one_line(why, 80)}); restore it from a copy, or start the sweep again with "
        "`lstm-ray tune`"
    )


def find_sweep(name_or_path: str, storage: str) -> str:
    """The sweep folder: `name_or_path` itself when it is one, else the latest `<name>-<timestamp>` in `storage`."""
    check_storage_path("NAME_OR_PATH", name_or_path)
    check_storage_path("--storage", storage)
    fs, root = pafs.FileSystem.from_uri(as_uri(name_or_path))
    if fs.get_file_info(f"{root}/{INFO_FILE}").type == pafs.FileType.File:
        return as_uri(name_or_path)
    fs, root = pafs.FileSystem.from_uri(as_uri(storage))
    found = [
        info.base_name
        for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        if info.type == pafs.FileType.Directory
        and info.base_name.startswith(f"{name_or_path}-")
        and fs.get_file_info(f"{info.path}/{INFO_FILE}").type == pafs.FileType.File
    ]
    if not found:
        raise ConfigError(
            "NAME_OR_PATH",
            f"{name_or_path!r} is neither a sweep folder nor the name of a sweep under {storage}; "
            "pass the folder the sweep printed, or --storage where its results are",
        )
    # <name>-YYYYmmdd-HHMMSS sorts by time; a longer name sharing the prefix has a non-digit after it.
    latest = max(n for n in found if n.removeprefix(f"{name_or_path}-").replace("-", "").isdigit())
    return f"{as_uri(storage).rstrip('/')}/{latest}"
