"""Column types as the row steps read them: dictionary columns decoded, decimals as float64, nested columns refused,
missing cells (null, NaN in a float column, blank text) found by row.

    table = plain_columns(table, ["date", "sales"])   # dictionary<int32, string> -> string, decimal128 -> float64
    refuse_nested(table, "store", "data.id_column")    # list, struct, map or union: DataError naming the type
    missing = missing_cells(table.column("date"))      # one bool per row
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_ray.errors import DataError

__all__ = ["missing_cells", "missing_error", "plain_columns", "refuse_nested", "refuse_text_among_numbers"]

NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"  # a cell a CSV reader would have read as a number


def plain_columns(table: pa.Table, names: list[str]) -> pa.Table:
    """`table` with each of `names` decoded from a dictionary to its value type, and decimals as the float64
    nearest each value (the models compute in float32: digits past float64's are of no use). Other columns
    are left alone."""
    for name in dict.fromkeys(names):
        column = table.column(name)
        plain = pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column
        if pa.types.is_decimal(plain.type):
            # through text: Arrow's direct cast can miss the nearest float64 by one unit in the last place
            plain = pc.cast(pc.cast(plain, pa.string()), pa.float64())
        if plain is not column:
            table = table.set_column(table.column_names.index(name), name, plain)
    return table


def refuse_nested(table: pa.Table, name: str, key: str) -> None:
    """DataError on `key` when column `name` holds lists, structs, maps or mixed types (a union): a series id,
    category, split mark or label must be one plain value per row."""
    kind = table.column(name).type
    if pa.types.is_nested(kind):
        what = "mixed types (a union)" if pa.types.is_union(kind) else "several values per row"
        raise DataError(
            key,
            f"column {name!r} is {kind}, {what}; it must hold one text, number or date per row (flatten it)",
        )


def refuse_text_among_numbers(table: pa.Table, name: str, key: str) -> None:
    """DataError on `key` when text column `name` holds numbers in some cells and other text in others, as a
    CSV column does when one cell is not a number: it names the first such cell, not just the column's type."""
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return
    numbers = np.asarray(pc.fill_null(pc.match_substring_regex(column, NUMBER), False), dtype=bool)
    text = ~missing_cells(column) & ~numbers
    if text.any() and numbers.any():
        row = int(np.argmax(text))
        raise DataError(
            key,
            f"column {name!r} mixes numbers and text ({column[row].as_py()!r} in row {row + 1}); "
            "fix those cells, or list the column in data.categorical",
        )


def missing_cells(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True for each row that is null, NaN in a floating-point column, or blank text (what an empty CSV cell
    in a text column reads as)."""
    missing = pc.is_null(column, nan_is_null=pa.types.is_floating(column.type))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing = pc.or_kleene(missing, pc.equal(pc.utf8_trim_whitespace(column), ""))
    return np.asarray(pc.fill_null(missing, True), dtype=bool)


def missing_error(key: str, name: str, missing: np.ndarray) -> DataError:
    """The DataError for a column with missing cells (`missing`, one bool per row): how many, and the first
    one's row, counted from 1 in the table as read (a CSV's header is not a row)."""
    first = int(np.argmax(missing)) + 1
    return DataError(
        key,
        f"column {name!r} has {int(missing.sum())} missing values (empty or NaN), the first in row {first}; "
        "fill them or drop those rows",
    )
