"""Import Personalize datasets from Parquet files: read in row groups, check against the schema, convert.

The same checks and dtypes as a CSV import (`csv_import`, `block_conversion`); a Parquet file has no
lines, so an error names the data row (the first row is row 1). Columns may be stored as strings or as
typed Parquet columns (an int64 TIMESTAMP, a double EVENT_VALUE, a dictionary-encoded USER_ID).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personalize_torch.data.block_conversion import TypedColumns, convert_block, typed_frame
from personalize_torch.data.file_schema import file_schema
from personalize_torch.data.schema import Schema
from personalize_torch.errors import InputError

BATCH_ROWS = 1 << 20


def _open(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        return pq.ParquetFile(path)
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
    header = list(parquet.schema_arrow.names)
    schema = file_schema(path, dataset_type, schema, header, lambda: _sample_strings(parquet, header), "columns")
    typed = TypedColumns(schema)
    first_row = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        def block_error(row: int, message: str, column: str, first_row=first_row) -> InputError:
            return InputError(f"row {first_row + row + 1}: {message}", file=str(path), column=column)

        columns = {name: _plain(batch.column(name)) for name in header}
        typed.add(convert_block(columns, batch.num_rows, schema, block_error))
        first_row += batch.num_rows
    if typed.n_rows == 0:
        raise InputError("no data rows", file=str(path))
    return typed.table(), schema


def _sample_strings(parquet: pq.ParquetFile, header: list[str]) -> pd.DataFrame:
    """The first 1000 rows as strings, to infer a schema from."""
    sample = next(parquet.iter_batches(batch_size=1000), None)
    return pd.DataFrame({name: (sample.column(name).cast(pa.string()).to_pandas() if sample is not None
                                else pd.Series([], dtype=str)) for name in header})


def _plain(column: pa.Array) -> pa.Array:
    """A dictionary-encoded or large-string column as a plain string array."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column
