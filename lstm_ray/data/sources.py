"""Reading a data source into a pyarrow Table: `builtin:NAME`, or Parquet / CSV / Arrow IPC files and folders.

    read_table("s3://bucket/sales/")          # a (hive-)partitioned Parquet dataset
    read_table("data/series.csv.gz")           # compression is detected from the suffix

Local paths and cloud URIs (s3://, gs://) go through pyarrow.fs, so credentials come from the usual
environment variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...) or from URI
options such as `s3://bucket/key?endpoint_override=host:9000&scheme=http`. Every failure is a `DataError` on
`data.source`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from lstm_ray.errors import DataError, one_line

__all__ = ["BUILTIN_PREFIX", "FORMATS", "read_table"]

BUILTIN_PREFIX = "builtin:"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".feather": "ipc", ".arrow": "ipc", ".ipc": "ipc"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # CSV compressions pyarrow detects from the suffix


def read_table(source: str) -> pa.Table:
    """The whole table behind `source`: a file, or a folder of same-format files (hive partitions become columns).

    Raises DataError naming data.source when the source is missing, of an unknown format, or unreadable.
    """
    if source.startswith(BUILTIN_PREFIX):
        from lstm_ray.data.builtin import load_builtin

        try:
            return load_builtin(source.removeprefix(BUILTIN_PREFIX))
        except ValueError as err:
            raise DataError("data.source", str(err)) from None
    filesystem, path = _open_filesystem(source)
    try:
        info = filesystem.get_file_info(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.source", f"cannot open {source!r}: {one_line(err)}") from None
    if info.type == pafs.FileType.NotFound:
        raise DataError("data.source", f"{source!r} not found; check the path or use builtin:co2")
    if info.type not in (pafs.FileType.File, pafs.FileType.Directory):  # a pipe or device would block or never end
        raise DataError("data.source", f"{source!r} is not a regular file or folder; copy the data into a file")
    try:
        if info.type == pafs.FileType.Directory:
            return _read_folder(source, filesystem, path)
        return _read_file(source, filesystem, path)
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.source", f"cannot read {source!r}: {one_line(err)}") from None


def _open_filesystem(source: str) -> tuple[pafs.FileSystem, str]:
    try:
        uri = source if "://" in source else str(Path(source).expanduser().resolve())
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError, RuntimeError) as err:  # ValueError: a NUL; Runtime: a link loop
        raise DataError("data.source", f"cannot open {source!r}: {one_line(err)}") from None


def _read_file(source: str, filesystem: pafs.FileSystem, path: str) -> pa.Table:
    fmt = format_of(path)
    if fmt == "parquet":
        return pads.dataset(path, filesystem=filesystem, format="parquet").to_table()
    if fmt == "csv":
        with filesystem.open_input_stream(path, compression="detect") as stream:
            return pacsv.read_csv(stream)
    with filesystem.open_input_file(path) as stream:
        try:
            return ipc.open_file(stream).read_all()
        except pa.ArrowInvalid:  # not the IPC file format: try the streaming format
            stream.seek(0)
            return ipc.open_stream(stream).read_all()


def _read_folder(source: str, filesystem: pafs.FileSystem, path: str) -> pa.Table:
    files = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    names = [f.path for f in files if f.type == pafs.FileType.File and not _hidden(f.path, path)]
    formats = {format_of(name, strict=False) for name in names} - {None}
    if len(formats) != 1:
        found = ", ".join(sorted(formats)) or "no data files"
        raise DataError("data.source", f"folder {source!r} must hold files of one format, found {found}")
    fmt = formats.pop()
    kept = [name for name in names if format_of(name, strict=False) == fmt]
    dataset = pads.dataset(
        kept,
        filesystem=filesystem,
        format="ipc" if fmt == "ipc" else fmt,
        partitioning=pads.HivePartitioning.discover(infer_dictionary=False),
        partition_base_dir=path,
    )
    return dataset.to_table()


def format_of(path: str, strict: bool = True) -> str | None:
    """parquet, csv or ipc from the file name; None (or DataError when `strict`) for anything else."""
    suffixes = [s.lower() for s in PurePosixPath(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
        if suffixes and FORMATS.get(suffixes[-1]) != "csv":
            suffixes = []  # only CSV is read through a decompressing stream
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    if strict:
        known = ", ".join(sorted(FORMATS))
        raise DataError("data.source", f"cannot tell the format of {path!r}; use a file ending in {known}")
    return None


def _hidden(name: str, base: str) -> bool:
    """Files Spark, Hive and friends leave beside the data (_SUCCESS, .crc, _metadata)."""
    parts = PurePosixPath(name).relative_to(PurePosixPath(base)).parts if name.startswith(base) else (name,)
    return any(part.startswith(("_", ".")) for part in parts)
