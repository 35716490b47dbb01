"""Import Personalize datasets from Parquet files: read in row groups, check against the schema, convert.

The same checks and dtypes as a CSV import (`csv_import`, `block_conversion`); a Parquet file has no
lines, so an error names the data row (the first row is row 1). Columns may be stored as strings or as
typed Parquet columns (an int64 TIMESTAMP, a double EVENT_VALUE, a dictionary-encoded USER_ID, UTF-8 binary).
A damaged file is refused by name; a changed value inside a data page is found only when the file was
written with page checksums (pyarrow: `write_page_checksum=True`), which are verified when present.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personalize_torch.data.block_conversion import RowError, TypedColumns, convert_block, typed_frame
from personalize_torch.data.file_schema import file_schema
from personalize_torch.data.schema import Schema
from personalize_torch.errors import InputError

BATCH_ROWS = 1 << 20


def _open(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)    # for files written with page checksums
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"not a Parquet file ({err})", file=str(path)) from None


def read_dataset_parquet(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None
                         ) -> tuple[pd.DataFrame, Schema]:
    """Read one Interactions / Items / Users Parquet file; return the typed DataFrame and its schema."""
    table, schema = read_parquet_table(path, dataset_type, schema)
    return typed_frame(table, schema), schema


def read_parquet_table(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None
                       ) -> tuple[pa.Table, Schema]:
    """As `read_dataset_parquet`, the typed columns as an Arrow table (see `TypedColumns.table`)."""
    path = Path(path)
    parquet = _open(path)
    header = _columns(path, parquet.schema_arrow)
    schema = file_schema(path, dataset_type, schema, header, lambda: _sample_strings(parquet, header), "columns")
    typed = TypedColumns(schema)
    first_row = 0
    for batch in _batches(path, parquet):
        def block_error(row: int, message: str, column: str, first_row=first_row) -> InputError:
            return InputError(f"row {first_row + row + 1}: {message}", file=str(path), column=column)

        columns = {name: _plain(batch.column(name), name, block_error) for name in header}
        typed.add(convert_block(columns, batch.num_rows, schema, block_error))
        first_row += batch.num_rows
    if typed.n_rows == 0:
        raise InputError("no data rows", file=str(path))
    return typed.table(), schema


def _columns(path: Path, arrow_schema: pa.Schema) -> list[str]:
    """The file's column names, each once and of a type a dataset field can be read from (strings, binary,
    numbers, booleans, timestamps...; not lists, structs or maps)."""
    names = list(arrow_schema.names)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InputError("duplicate column", file=str(path), column=name)
        kind = arrow_schema.field(i).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_nested(kind):
            raise InputError(f"a column of type {kind} cannot be a dataset field (expected strings or numbers)",
                             file=str(path), column=name)
    return names


def _batches(path: Path, parquet: pq.ParquetFile):
    """The file's record batches; a damaged file is an InputError naming the row where reading stopped."""
    batches = parquet.iter_batches(batch_size=BATCH_ROWS)
    read = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"cannot read the Parquet file after row {read} ({str(err).strip()})",
                             file=str(path)) from None
        if batch is None:
            return
        read += batch.num_rows
        yield batch


def _sample_strings(parquet: pq.ParquetFile, header: list[str]) -> pd.DataFrame:
    """The first 1000 rows as strings, to infer a schema from (none when they cannot be read as strings: the
    full read names the problem)."""
    try:
        sample = next(parquet.iter_batches(batch_size=1000), None)
        if sample is not None:
            return pd.DataFrame({name: sample.column(name).cast(pa.string()).to_pandas() for name in header})
    except (pa.ArrowException, OSError):
        pass
    return pd.DataFrame({name: pd.Series([], dtype=str) for name in header})


def _plain(column: pa.Array, name: str, row_error: RowError) -> pa.Array:
    """A dictionary-encoded, large-string or binary column as a plain string array (others as they are);
    binary that is not UTF-8 text is an error naming the row."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            column = column.cast(pa.large_string())
        except pa.ArrowInvalid:
            raise row_error(_first_not_utf8(column), "not UTF-8 text", name) from None
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    if pa.types.is_string(column.type):
        try:
            column.validate(full=True)      # Parquet's reader does not check that strings are UTF-8
        except pa.ArrowInvalid:
            raise row_error(_first_not_utf8(column.cast(pa.binary())), "not UTF-8 text", name) from None
    return column


def _first_not_utf8(column: pa.Array) -> int:
    """The first value of a binary column that is not UTF-8 (an error path: value by value)."""
    return next(i for i, v in enumerate(column.to_pylist()) if v is not None and not _is_utf8(v))


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
