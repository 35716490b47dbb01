"""Import Personalize-format CSV files: read, check against the schema, convert types.

Validation happens here, once: every problem is reported as an InputError naming the file, the line
(the header is line 1) and the column. Code downstream may trust the DataFrames this returns:
ids are strings, TIMESTAMP / CREATION_TIMESTAMP are int64 epoch seconds, numeric fields float64 or
int64, and empty cells are missing values (NaN / <NA>).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.schema import Field, Schema, _check_reserved, infer_schema, load_schema
from personalize_torch.errors import InputError

MAX_ID_LENGTH = 256
# Epoch seconds beyond this (year 5138) are surely milliseconds or microseconds.
MAX_EPOCH_SECONDS = 10**11


def read_header(path: Path) -> list[str]:
    if not path.exists():
        raise InputError("file not found", file=str(path))
    if path.stat().st_size == 0:
        raise InputError("file is empty; expected a header row and data rows", file=str(path))
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise InputError("no header row", file=str(path), line=1)
    for i, name in enumerate(header):
        if not name:
            raise InputError(f"column {i + 1} of the header has no name", file=str(path), line=1)
        if name in header[:i]:
            raise InputError("duplicate column in the header", file=str(path), line=1, column=name)
    return header


def read_dataset_csv(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None
                     ) -> tuple[pd.DataFrame, Schema]:
    """Read one Interactions / Items / Users CSV; return the typed DataFrame and its schema."""
    path = Path(path)
    header = read_header(path)
    raw = _read_strings(path, header)
    if schema is None:
        schema = infer_schema(dataset_type, header, raw.head(1000), source=str(path))
        try:
            _check_reserved(schema)
        except InputError as err:
            raise InputError(f"{err.message} (no schema given; inferred from the header {header})",
                             file=str(path), line=1) from None
    elif not isinstance(schema, Schema):
        schema = load_schema(schema, dataset_type)
    if schema.dataset_type != dataset_type:
        raise InputError(f"schema {schema.source} is for {schema.dataset_type}, not {dataset_type}", file=str(path))
    _check_header_matches(path, header, schema)
    out = {}
    for f in schema.fields:
        column = raw[f.name] if f.name in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="string")
        out[f.name] = _convert(column, f, path)
    df = pd.DataFrame(out, index=raw.index).reset_index(drop=True)
    _check_ids(df, path)
    return df, schema


def _read_strings(path: Path, header: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=False,
                         encoding="utf-8-sig")
    except pd.errors.ParserError as err:
        found = re.search(r"line (\d+)", str(err))
        raise InputError(f"malformed CSV: {str(err).strip()}", file=str(path),
                         line=int(found.group(1)) if found else None) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=str(path)) from None
    if len(df) == 0:
        raise InputError("no data rows after the header", file=str(path), line=2)
    df.columns = header
    return df  # index: data row number, 0-based (see line_of_row for the line in the file)


def line_of_row(path: Path, row: int) -> int:
    """The line in the file where data row `row` (0-based, blank lines skipped as pandas does) starts.

    Only called to report an error, so the success path never pays for this scan.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        start = reader.line_num + 1
        seen = -1
        for record in reader:
            if any(field != "" for field in record) or len(record) > 1:
                seen += 1
                if seen == row:
                    return start
            start = reader.line_num + 1
    return row + 2


def row_error(path: Path, row: int, message: str, column: str | None = None) -> InputError:
    return InputError(message, file=str(path), line=line_of_row(path, row), column=column)


def _check_header_matches(path: Path, header: list[str], schema: Schema) -> None:
    extra = [h for h in header if schema.get(h) is None]
    if extra:
        raise InputError(f"column is not in the schema {schema.source} (schema fields: {', '.join(schema.names)})",
                         file=str(path), line=1, column=extra[0])
    missing = [f.name for f in schema.fields if f.name not in header and not f.nullable]
    if missing:
        raise InputError(f"the header lacks the schema's required field (header: {', '.join(header)})",
                         file=str(path), line=1, column=missing[0])


def _first_bad(mask: pd.Series) -> int:
    """Data row (0-based) of the first True in `mask`."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def _convert(column: pd.Series, f: Field, path: Path) -> pd.Series:
    missing = column.isna()
    if missing.any() and not f.nullable:
        raise row_error(path, _first_bad(missing), "empty value in a required field", f.name)
    if f.type == "string":
        return column.astype("string")
    if f.type == "boolean":
        lowered = column.str.strip().str.lower()
        bad = ~missing & ~lowered.isin(["true", "false"])
        if bad.any():
            row = _first_bad(bad)
            raise row_error(path, row, f"expected true or false, got {column.iloc[row]!r}", f.name)
        return lowered.map({"true": True, "false": False}).astype("boolean")
    numbers = pd.to_numeric(column.str.strip(), errors="coerce")
    bad = ~missing & numbers.isna()
    if bad.any():
        row = _first_bad(bad)
        raise row_error(path, row, f"expected a number ({f.type}), got {column.iloc[row]!r}", f.name)
    if f.type in ("int", "long"):
        not_integer = ~missing & (numbers != np.floor(numbers))
        if not_integer.any():
            row = _first_bad(not_integer)
            raise row_error(path, row, f"expected an integer ({f.type}), got {column.iloc[row]!r}", f.name)
        if f.name in (C.TIMESTAMP, C.CREATION_TIMESTAMP):
            too_big = numbers.abs() >= MAX_EPOCH_SECONDS
            if too_big.any():
                row = _first_bad(too_big)
                raise row_error(path, row, f"{column.iloc[row]} is not in epoch seconds (milliseconds? divide by "
                                "1000)", f.name)
        return numbers.astype("Int64" if f.nullable else "int64")
    return numbers.astype("float64")


def _check_ids(df: pd.DataFrame, path: Path) -> None:
    for name in (C.USER_ID, C.ITEM_ID):
        if name in df.columns:
            too_long = df[name].str.len() > MAX_ID_LENGTH
            if too_long.any():
                raise row_error(path, _first_bad(too_long), f"ids may be at most {MAX_ID_LENGTH} characters", name)
