"""New local MLflow SQLite stores, copied from an empty one whose schema is already migrated.

MLflow creates a SQLite store by running its schema migrations one after another: about 2 CPU-seconds, 4-5 s
of a sweep's start while Ray starts on the same 2 cores. The first new store on a machine is made that way, into
a cache folder (one per MLflow version), and emptied of its experiments; every later new store is a copy of it.
MLflow adds the default experiment, with this store's own artifact location, when it first opens the copy, as it
does for any store that lacks one. New stores use SQLite's write-ahead log (see `_write_ahead`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "sqlite:///"


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstm-ray"


def seed_store(uri: str) -> None:
    """Put an empty, migrated store at `uri` when it names a SQLite file that does not exist yet; otherwise, or
    when the copy cannot be made, leave it to MLflow."""
    if not uri.startswith(PREFIX) or "?" in uri:
        return
    path = Path(uri.removeprefix(PREFIX))
    if path.name in ("", ":memory:") or path.exists() or not path.parent.is_dir():
        return
    copy = path.with_name(f".{path.name}.{os.getpid()}.seed")
    try:
        shutil.copyfile(_template(), copy)
        _write_ahead(copy)
        os.link(copy, path)  # never over a store another process created meanwhile
    except FileExistsError:
        pass
    except Exception as err:  # only a shortcut: whatever stops it (read-only home, no hard links), MLflow's way works
        log.debug("MLflow creates %s itself: %s", path, err)
    finally:
        copy.unlink(missing_ok=True)


def _write_ahead(path: Path) -> None:
    """Switch the file to write-ahead logging, which it keeps: a commit appends to one log instead of writing and
    deleting a rollback journal (a trial's MLflow writes take a quarter less time and CPU), and readers such as
    the MLflow UI no longer block the sweep's writes."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _template() -> Path:
    import mlflow

    template = cache_folder() / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        building = template.with_name(f"{template.name}.{os.getpid()}.building")
        _build(building)
        os.replace(building, template)
    return template


def _build(path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.unlink(missing_ok=True)
    store = SqlAlchemyStore(f"{PREFIX}{path}", str(path.parent / "unused-artifacts"))  # runs the migrations
    store.engine.dispose()
    with closing(sqlite3.connect(path)) as db, db:  # closed, after the commit
        db.execute("DELETE FROM experiments")  # the default one's artifact location is this file's
