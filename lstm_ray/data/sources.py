"""Reading a data source into a pyarrow Table: `builtin:NAME`, or Parquet / CSV / Arrow IPC files and folders.

    read_table("s3://bucket/sales/")          # a (hive-)partitioned Parquet dataset
    read_table("data/series.csv.gz")           # compression is detected from the suffix

Local paths and cloud URIs (s3://, gs://) go through pyarrow.fs, so credentials come from the usual
environment variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...) or from URI
options such as `s3://bucket/key?endpoint_override=host:9000&scheme=http`. Every failure is a `DataError` on
`data.source`, and so are a column name used twice and files of one folder whose columns differ.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from lstm_ray.errors import DataError, one_line
from lstm_ray.redaction import redact

__all__ = ["BUILTIN_PREFIX", "FORMATS", "read_table"]

BUILTIN_PREFIX = "builtin:"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".feather": "ipc", ".arrow": "ipc", ".ipc": "ipc"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # CSV compressions pyarrow detects from the suffix


def read_table(source: str, notes: list[str] | None = None) -> pa.Table:
    """The whole table behind `source`: a file, or a folder of same-format files (hive partitions become columns).
    Where a folder's files give one column different types that widen safely (int32 and int64, int64 and double),
    every file is read as the wider type and a line saying so is appended to `notes`.

    Raises DataError naming data.source when the source is missing, of an unknown format, or unreadable, when a
    column name appears twice in a file, and when a folder's files differ in column names (case included) or
    give a column types that do not widen into one.
    """
    if source.startswith(BUILTIN_PREFIX):
        from lstm_ray.data.builtin import load_builtin

        try:
            return load_builtin(source.removeprefix(BUILTIN_PREFIX))
        except ValueError as err:
            raise DataError("data.source", redact(str(err))) from None
    filesystem, path = _open_filesystem(source)
    try:
        info = filesystem.get_file_info(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.source", f"cannot open {redact(source)!r}: {redact(one_line(err))}") from None
    if info.type == pafs.FileType.NotFound:
        raise DataError("data.source", f"{redact(source)!r} not found; check the path or use builtin:co2")
    if info.type not in (pafs.FileType.File, pafs.FileType.Directory):  # a pipe or device would block or never end
        raise DataError("data.source", f"{redact(source)!r} is not a regular file or folder; copy the data into a file")
    try:
        if info.type == pafs.FileType.Directory:
            return _read_folder(source, filesystem, path, notes if notes is not None else [])
        return _read_file(source, filesystem, path)
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.source", f"cannot read {redact(source)!r}: {redact(one_line(err))}") from None


def _open_filesystem(source: str) -> tuple[pafs.FileSystem, str]:
    try:
        uri = source if "://" in source else str(Path(source).expanduser().resolve())
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError, RuntimeError) as err:  # ValueError: a NUL; Runtime: a link loop
        raise DataError("data.source", f"cannot open {redact(source)!r}: {redact(one_line(err))}") from None


def _read_file(source: str, filesystem: pafs.FileSystem, path: str) -> pa.Table:
    fmt = format_of(path)
    if fmt == "parquet":
        _check_unique_names(pads.ParquetFileFormat().inspect(path, filesystem=filesystem), "the file")
        return pads.dataset(path, filesystem=filesystem, format="parquet").to_table()
    if fmt == "csv":
        with filesystem.open_input_stream(path, compression="detect") as stream:
            table = pacsv.read_csv(stream)
    else:
        with filesystem.open_input_file(path) as stream:
            try:
                table = ipc.open_file(stream).read_all()
            except pa.ArrowInvalid:  # not the IPC file format: try the streaming format
                stream.seek(0)
                table = ipc.open_stream(stream).read_all()
    _check_unique_names(table.schema, "the file")
    return table


def _read_folder(source: str, filesystem: pafs.FileSystem, path: str, notes: list[str]) -> pa.Table:
    files = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    names = [f.path for f in files if f.type == pafs.FileType.File and not _hidden(f.path, path)]
    formats = {format_of(name, strict=False) for name in names} - {None}
    if len(formats) != 1:
        found = ", ".join(sorted(formats)) or "no data files"
        raise DataError("data.source", f"folder {redact(source)!r} must hold files of one format, found {found}")
    fmt = formats.pop()
    kept = sorted(name for name in names if format_of(name, strict=False) == fmt)
    schemas = {name.removeprefix(path).lstrip("/"): _file_schema(fmt, name, filesystem) for name in kept}
    widened = _one_schema(schemas, notes)

    def dataset(schema: pa.Schema | None = None) -> pads.Dataset:
        return pads.dataset(
            kept,
            schema=schema,
            format=fmt,
            filesystem=filesystem,
            partitioning=pads.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=path,
        )

    if widened is None:
        return dataset().to_table()
    with_partitions = pa.unify_schemas([dataset().schema, widened], promote_options="permissive")
    return dataset(with_partitions).to_table()


def _file_schema(fmt: str, name: str, filesystem: pafs.FileSystem) -> pa.Schema:
    """The columns of one file, as a folder read would infer them (a CSV's from its first block)."""
    if fmt == "csv":
        with filesystem.open_input_stream(name, compression="detect") as stream:
            return pacsv.open_csv(stream).schema
    return (pads.ParquetFileFormat() if fmt == "parquet" else pads.IpcFileFormat()).inspect(name, filesystem=filesystem)


def _check_unique_names(schema: pa.Schema, where: str) -> None:
    repeated = [name for name, count in Counter(schema.names).items() if count > 1]
    if repeated:
        raise DataError(
            "data.source",
            f"column {repeated[0]!r} appears {schema.names.count(repeated[0])} times in {where}; rename the copies",
        )


def _one_schema(schemas: dict[str, pa.Schema], notes: list[str]) -> pa.Schema | None:
    """The schema every file of a folder is read as: None when all files agree; the widened one (and a note)
    when only types differ and widen safely. Raises DataError naming the files and the columns otherwise."""
    (first, schema), *others = schemas.items()
    for shown, other in schemas.items():
        _check_unique_names(other, shown)
        if other.names != schema.names and set(other.names) != set(schema.names):
            raise DataError("data.source", _name_difference(first, schema.names, shown, other.names))
    differ = sorted({f.name for _, other in others for f in other if f.type != schema.field(f.name).type})
    if not differ:
        return None
    for name in differ:
        types = {shown: other.field(name).type for shown, other in schemas.items()}
        try:
            widest = pa.unify_schemas([pa.schema([(name, t)]) for t in types.values()], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            (a, type_a), (b, type_b) = _two_types(types)
            raise DataError(
                "data.source",
                f"column {name!r} is {type_a} in {a} but {type_b} in {b}; give it one type in every file",
            ) from None
        notes.append(
            f"data.source: column {name!r} has types {', '.join(sorted({str(t) for t in types.values()}))}"
            f" across the folder's files; all are read as {widest.field(name).type}"
        )
    return pa.unify_schemas(list(schemas.values()), promote_options="permissive")


def _name_difference(first: str, names: list[str], shown: str, other: list[str]) -> str:
    extra = [n for n in other if n not in names]
    lacking = [n for n in names if n not in other]
    if extra and lacking and {n.lower() for n in names} == {n.lower() for n in other}:
        spelled = next(n for n in names if n.lower() == extra[0].lower())
        return (
            f"column {spelled!r} in {first} is {extra[0]!r} in {shown} (names differ in case); "
            "spell each column the same in every file"
        )
    parts = [
        f"has {', '.join(map(repr, extra))}" if extra else "",
        f"lacks {', '.join(map(repr, lacking))}" if lacking else "",
    ]
    return f"{shown} {' and '.join(p for p in parts if p)} compared with {first}; give every file the same columns"


def _two_types(types: dict[str, pa.DataType]) -> tuple[tuple[str, pa.DataType], tuple[str, pa.DataType]]:
    """Two files that disagree on a column's type: the first file, and the first that differs from it."""
    (first, kind), *rest = types.items()
    return (first, kind), next((shown, other) for shown, other in rest if other != kind)


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
