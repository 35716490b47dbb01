"""The schema a dataset file (CSV or Parquet) is read with, and its columns checked against it.

Both readers take the schema the same way: given (a Schema or the path of Avro JSON), or inferred from the
file's columns and a sample of its rows; then the file's columns must be schema fields, and every required
field must be a column. `where` says how the reader names the columns in messages ("header" for a CSV,
whose header is line 1; "columns" for a Parquet file, which has no lines).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from personalize_torch.data.schema import FIELD_NAME, Schema, _check_reserved, infer_schema, load_schema
from personalize_torch.errors import InputError


def file_schema(path: Path, dataset_type: str, schema: Schema | str | Path | None, columns: list[str],
                sample: Callable[[], pd.DataFrame], where: str) -> Schema:
    """The schema to read `path` with (`sample()`: a few rows as strings, read only when inferring), its
    columns checked."""
    line = 1 if where == "header" else None
    if schema is None:
        for name in columns:    # a schema's field names; a given schema's are checked when it is read
            if not FIELD_NAME.match(name):
                raise InputError(f"invalid column name {name!r} (no schema given, so it would be a field's): use "
                                 "letters, digits and underscores, starting with a letter or underscore",
                                 file=str(path), line=line, column=name)
        schema = infer_schema(dataset_type, columns, sample(), source=str(path))
        try:
            _check_reserved(schema)
        except InputError as err:
            raise InputError(f"{err.message} (no schema given; inferred from the {where} {columns})",
                             file=str(path), line=line) from None
    elif not isinstance(schema, Schema):
        schema = load_schema(schema, dataset_type)
    if schema.dataset_type != dataset_type:
        raise InputError(f"schema {schema.source} is for {schema.dataset_type}, not {dataset_type}", file=str(path))
    extra = [c for c in columns if schema.get(c) is None]
    if extra:
        raise InputError(f"column is not in the schema {schema.source} (schema fields: {', '.join(schema.names)})",
                         file=str(path), line=line, column=extra[0])
    missing = [f.name for f in schema.fields if f.name not in columns and not f.nullable]
    if missing:
        lacking = "the header" if where == "header" else "the file"
        raise InputError(f"{lacking} lacks the schema's required field ({where}: {', '.join(columns)})",
                         file=str(path), line=line, column=missing[0])
    return schema
