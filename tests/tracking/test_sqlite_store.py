"""New local SQLite stores are copies of a migrated empty one, and indistinguishable from MLflow's own."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from mlflow import MlflowClient

from lstm_ray.tracking.runs import connect
from lstm_ray.tracking.sqlite_store import cache_folder, seed_store


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lstm-ray"


def schema(path) -> list[tuple]:
    """Every table and index with its definition, and the migration revision. A definition's lines are sorted:
    MLflow's migrations write a table's CHECK constraints in a different order from one run to the next."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return [
        (kind, name, sorted(line.strip(" \t,") for line in (sql or "").splitlines())) for kind, name, sql in rows
    ] + [revision]


def journal_mode(path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_seeded_store_is_the_store_mlflow_would_create(tmp_path, cache, monkeypatch):
    monkeypatch.chdir(tmp_path)  # both stores' default artifact location: ./mlruns
    MlflowClient("sqlite:///native.db").search_experiments()
    for name in ("first.db", "second.db"):  # the first builds the template, the second only copies it
        seed_store(f"sqlite:///{tmp_path / name}")
        assert schema(tmp_path / name) == schema(tmp_path / "native.db")
        assert journal_mode(tmp_path / name) == "wal" and journal_mode(tmp_path / "native.db") == "delete"
        client = connect(f"sqlite:///{tmp_path / name}")
        (default,) = client.search_experiments()
        native = MlflowClient("sqlite:///native.db").get_experiment("0")
        assert (default.experiment_id, default.name) == ("0", "Default")
        assert default.artifact_location == native.artifact_location == str(tmp_path / "mlruns" / "0")
        run = client.create_run(client.create_experiment("sweep"))
        client.log_metric(run.info.run_id, "val_rmse", 0.5)
        assert client.get_run(run.info.run_id).data.metrics == {"val_rmse": 0.5}
    assert cache_folder() == cache and len(list(cache.glob("mlflow-*-empty.db"))) == 1


def test_an_existing_store_or_another_backend_is_left_alone(tmp_path, cache):
    existing = connect(f"sqlite:///{tmp_path / 'kept.db'}")
    existing.create_experiment("earlier")
    seed_store(f"sqlite:///{tmp_path / 'kept.db'}")
    assert [e.name for e in existing.search_experiments()] == ["earlier", "Default"]
    for uri in (f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "http://127.0.0.1:5000", f"file:{tmp_path / 'runs'}"):
        seed_store(uri)
    # kept.db-wal and kept.db-shm: its write-ahead log and index while `existing` has it open
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "kept.db", "kept.db-shm", "kept.db-wal"]


def test_without_a_usable_cache_mlflow_creates_the_store(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # the cache folder cannot be made
    client = connect(f"sqlite:///{tmp_path / 'store.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "store.db"]  # no half-made copy left
