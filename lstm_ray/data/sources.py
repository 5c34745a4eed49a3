"""Reading a data source into a pyarrow Table: `builtin:NAME`, or a Parquet / CSV / Feather file or URI.

Local paths and cloud URIs (s3://, gs://) go through pyarrow.fs, so credentials come from the usual
environment variables. Every failure is a `DataError` on `data.source`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lstm_ray.errors import DataError

BUILTIN_PREFIX = "builtin:"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".feather": "feather", ".arrow": "feather"}


def read_table(source: str) -> pa.Table:
    """The whole table behind `source`. Raises DataError naming data.source when it cannot be read."""
    if source.startswith(BUILTIN_PREFIX):
        from lstm_ray.data.builtin import load_builtin

        try:
            return load_builtin(source.removeprefix(BUILTIN_PREFIX))
        except ValueError as err:
            raise DataError("data.source", str(err)) from None
    fmt = _format_of(source)
    try:
        filesystem, path = pafs.FileSystem.from_uri(source if "://" in source else str(Path(source).resolve()))
        info = filesystem.get_file_info(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError("data.source", f"cannot open {source!r}: {_one_line(err)}") from None
    if info.type == pafs.FileType.NotFound:
        raise DataError("data.source", f"{source!r} not found; check the path or use builtin:co2")
    try:
        if fmt == "parquet":
            return pq.read_table(path, filesystem=filesystem)
        with filesystem.open_input_file(path) as stream:
            if fmt == "csv":
                return pacsv.read_csv(stream)
            return feather.read_table(stream)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError("data.source", f"cannot read {source!r} as {fmt}: {_one_line(err)}") from None


def _format_of(source: str) -> str:
    suffix = Path(source.rstrip("/")).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix == "":
        return "parquet"  # a directory of Parquet files (a partitioned dataset)
    known = ", ".join(sorted(FORMATS))
    raise DataError("data.source", f"cannot tell the format of {source!r}; use a file ending in {known}")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
