"""Every source format reads to the same table: local files and folders, compressed CSV, Arrow IPC, and s3://
from a real local S3-compatible server (moto_server on 127.0.0.1, stopped by its process group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from moto_s3 import moto_s3

from lstm_ray.data.sources import read_table
from lstm_ray.errors import DataError

TABLE = pa.table({"t": np.arange(12, dtype=np.int64), "y": np.linspace(0, 1, 12), "shop": ["a", "b", "c"] * 4})


def same(table: pa.Table, columns=("t", "y", "shop")) -> bool:
    got = table.select(list(columns)).sort_by("t")
    return got.column("t").to_pylist() == TABLE.column("t").to_pylist() and np.allclose(got["y"], TABLE["y"])


def test_parquet_file(tmp_path):
    pq.write_table(TABLE, tmp_path / "s.parquet")
    assert same(read_table(str(tmp_path / "s.parquet")))


def test_partitioned_parquet_folder_turns_partitions_into_columns(tmp_path):
    pq.write_to_dataset(TABLE, tmp_path / "set", partition_cols=["shop"])
    (tmp_path / "set" / "_SUCCESS").write_text("")  # left by Spark jobs; must be ignored
    table = read_table(str(tmp_path / "set"))
    assert same(table) and sorted(set(table.column("shop").to_pylist())) == ["a", "b", "c"]


@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
def test_csv_plain_and_compressed(tmp_path, name):
    with (
        pa.CompressedOutputStream(str(tmp_path / name), "gzip")
        if name.endswith(".gz")
        else pa.OSFile(str(tmp_path / name), "wb") as out
    ):
        pacsv.write_csv(TABLE, out)
    assert same(read_table(str(tmp_path / name)))


def test_folder_of_csv_files(tmp_path):
    (tmp_path / "parts").mkdir()
    pacsv.write_csv(TABLE.slice(0, 6), tmp_path / "parts" / "a.csv")
    pacsv.write_csv(TABLE.slice(6), tmp_path / "parts" / "b.csv")
    assert same(read_table(str(tmp_path / "parts")))


@pytest.mark.parametrize("name", ["s.feather", "s.arrow"])
def test_arrow_ipc_file(tmp_path, name):
    feather.write_feather(TABLE, tmp_path / name)
    assert same(read_table(str(tmp_path / name)))


def test_arrow_ipc_stream(tmp_path):
    with pa.OSFile(str(tmp_path / "s.arrow"), "wb") as out, ipc.new_stream(out, TABLE.schema) as writer:
        writer.write_table(TABLE)
    assert same(read_table(str(tmp_path / "s.arrow")))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: str(p / "absent.parquet"), "not found"),
        (lambda p: (p / "s.xlsx").write_text("x") and str(p / "s.xlsx"), "cannot tell the format"),
        (lambda p: (p / "s.parquet").write_text("not parquet") and str(p / "s.parquet"), "cannot read"),
        (lambda p: _mixed_folder(p), "must hold files of one format, found csv, parquet"),
    ],
)
def test_unusable_sources_are_named(tmp_path, make, expected):
    with pytest.raises(DataError, match=f"data.source: .*{expected}"):
        read_table(make(tmp_path))


def _mixed_folder(path: Path) -> str:
    (path / "mixed").mkdir()
    pq.write_table(TABLE, path / "mixed" / "a.parquet")
    pacsv.write_csv(TABLE, path / "mixed" / "b.csv")
    return str(path / "mixed")


@pytest.fixture(scope="module")
def s3_server():
    """A real moto S3 server on a free loopback port, with a bucket holding the table as Parquet and CSV."""
    with moto_s3() as port:
        keys = {"access_key": "test", "secret_key": "test", "region": "us-east-1"}
        s3 = pafs.S3FileSystem(**keys, endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
        s3.create_dir("data")
        pq.write_table(TABLE, "data/series.parquet", filesystem=s3)
        pq.write_to_dataset(TABLE, "data/partitioned", partition_cols=["shop"], filesystem=s3)
        with s3.open_output_stream("data/series.csv") as out:
            pacsv.write_csv(TABLE, out)
        yield port


@pytest.fixture
def s3_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.parametrize("key", ["series.parquet", "series.csv", "partitioned"])
def test_s3_uri_with_endpoint_options(s3_server, s3_credentials, key):
    table = read_table(f"s3://data/{key}?endpoint_override=127.0.0.1:{s3_server}&scheme=http")
    assert same(table)


def test_s3_uri_with_endpoint_from_the_environment(s3_server, s3_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3_server}")
    assert same(read_table("s3://data/series.parquet"))


def test_missing_s3_object_is_named(s3_server, s3_credentials):
    with pytest.raises(DataError, match="not found"):
        read_table(f"s3://data/absent.parquet?endpoint_override=127.0.0.1:{s3_server}&scheme=http")
