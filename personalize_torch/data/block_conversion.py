"""One block of a dataset file, checked against its schema and typed: the unit an import streams.

A CSV (or Parquet) file is read in blocks of rows; `convert_block` turns one block's raw columns into
typed Arrow arrays and raises an InputError naming the first bad row of the block (its 0-based data row
in the whole file, which the caller turns into a line). `TypedColumns` collects the blocks and gives the
DataFrame downstream code reads:

- USER_ID and ITEM_ID, and in Interactions every string field but IMPRESSION and textual ones (EVENT_TYPE,
  contextual fields such as DEVICE): pandas Categoricals. A hundred million events carry a few million
  distinct ids; stored as codes, they take 4 bytes a row instead of a Python string each.
- Other string fields: pandas strings. int / long: int64 (nullable ones pandas' Int64), float / double:
  float64, boolean: pandas' boolean. Empty cells are missing values.

The fast path converts with Arrow's compute kernels. A block whose values Arrow refuses (or that holds
something Arrow accepts and Personalize does not, such as "nan") is converted again by pandas, value by
value, which finds the bad row and its message, or accepts what pandas accepts ("1.0" in an int field).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from personalize_torch.data import constants as C
from personalize_torch.data.schema import Field, Schema
from personalize_torch.errors import InputError

MAX_ID_LENGTH = 256
# Epoch seconds beyond this (year 5138) are surely milliseconds or microseconds.
MAX_EPOCH_SECONDS = 10**11
# The largest magnitude of each Avro integer type (int: 32 bits, long: 64 bits).
INTEGER_LIMITS = {"int": 2**31 - 1, "long": 2**63 - 1}
ID_FIELDS = (C.USER_ID, C.ITEM_ID)

# (data row within the block, message, column) -> the InputError to raise, with the row made a file location
RowError = Callable[[int, str, str], InputError]


def is_categorical_column(f: Field, dataset_type: str) -> bool:
    """Whether `f` is stored as a pandas Categorical (see the module docstring)."""
    if f.name in ID_FIELDS:
        return True
    return (dataset_type == C.INTERACTIONS and f.type == "string" and not f.textual
            and f.name != C.IMPRESSION)


def _first(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.index(mask, True).as_py())


def _any(mask) -> bool:
    return bool(pc.any(mask).as_py())


def convert_block(columns: dict[str, pa.Array], n_rows: int, schema: Schema, row_error: RowError
                  ) -> dict[str, pa.Array]:
    """Typed, checked arrays for one block; `columns` holds the block's raw columns (strings from a CSV,
    any Arrow type from Parquet), a nullable schema field absent from the file may be absent."""
    out = {}
    for f in schema.fields:
        raw = columns.get(f.name)
        if raw is None:
            out[f.name] = pa.nulls(n_rows, arrow_type(f))
            continue
        if raw.null_count and not f.nullable:
            raise row_error(_first(pc.is_null(raw)), "empty value in a required field", f.name)
        out[f.name] = _convert(raw, f, row_error)
    return out


def arrow_type(f: Field) -> pa.DataType:
    if f.type == "string":
        return pa.string()
    if f.type == "boolean":
        return pa.bool_()
    return pa.int64() if f.type in ("int", "long") else pa.float64()


def _convert(raw: pa.Array, f: Field, row_error: RowError) -> pa.Array:
    if f.type == "string":
        values = raw if pa.types.is_string(raw.type) else pc.cast(raw, pa.string())
        if f.name in ID_FIELDS:
            too_long = pc.greater(pc.utf8_length(values), MAX_ID_LENGTH)
            if _any(too_long):
                raise row_error(_first(too_long), f"ids may be at most {MAX_ID_LENGTH} characters", f.name)
        return values
    if f.type == "boolean":
        if pa.types.is_boolean(raw.type):
            return raw
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(raw, pa.string())))
        bad = pc.and_(pc.is_valid(lowered), pc.invert(pc.is_in(lowered, pa.array(["true", "false"]))))
        if _any(bad):
            row = _first(bad)
            raise row_error(row, f"expected true or false, got {raw[row].as_py()!r}", f.name)
        return pc.equal(lowered, "true")
    numbers = _numbers_fast(raw, f)
    if numbers is None:
        numbers = _numbers_by_pandas(raw, f, row_error)
    if f.type == "int":
        too_big = pc.greater(pc.abs(numbers), INTEGER_LIMITS["int"])
        if _any(too_big):
            row = _first(too_big)
            raise row_error(row, f"{raw[row].as_py()} is out of range for an int (32 bits; declare the field a long)",
                            f.name)
    if f.name in (C.TIMESTAMP, C.CREATION_TIMESTAMP):
        too_big = pc.greater_equal(pc.abs(numbers), MAX_EPOCH_SECONDS)
        if _any(too_big):
            row = _first(too_big)
            raise row_error(row, f"{raw[row].as_py()} is not in epoch seconds (milliseconds? divide by 1000)",
                            f.name)
    return numbers


def _numbers_fast(raw: pa.Array, f: Field) -> pa.Array | None:
    """`raw` as int64 / float64 by Arrow's cast; None when Arrow refuses a value or reads one that
    Personalize would not take (not a number, infinity), for pandas to look at."""
    target = pa.int64() if f.type in ("int", "long") else pa.float64()
    try:
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            if pa.types.is_integer(target) and _any(pc.match_substring(raw, "x", ignore_case=True)):
                return None     # Arrow reads "0x1F" as hexadecimal; Personalize takes decimal numbers only
            numbers = pc.cast(pc.utf8_trim_whitespace(raw), target)
        elif pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type):
            numbers = pc.cast(raw, target)      # safe: a fraction or a uint64 beyond int64 raises
        else:
            return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pa.types.is_floating(target) and _any(pc.invert(pc.is_finite(numbers))):
        return None
    return numbers


def _numbers_by_pandas(raw: pa.Array, f: Field, row_error: RowError) -> pa.Array:
    """Personalize's number rules value by value, on a block Arrow's cast refused."""
    column = pd.Series(raw.to_pandas(), dtype="object")
    text = column.map(lambda v: v if v is None or isinstance(v, str) else repr(v))
    missing = column.isna()
    numbers = pd.to_numeric(text.str.strip(), errors="coerce")
    bad = ~missing & (numbers.isna() | ~np.isfinite(numbers.fillna(0)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise row_error(row, f"expected a number ({f.type}), got {column.iloc[row]!r}", f.name)
    if f.type in ("int", "long"):
        not_integer = ~missing & (numbers != np.floor(numbers))
        if not_integer.any():
            row = int(np.flatnonzero(not_integer.to_numpy())[0])
            raise row_error(row, f"expected an integer ({f.type}), got {column.iloc[row]!r}", f.name)
        # float64 holds 2**63 exactly: anything at or beyond it does not fit a long
        out_of_range = ~missing & (numbers.abs() >= 2.0**63)
        if out_of_range.any():
            row = int(np.flatnonzero(out_of_range.to_numpy())[0])
            raise row_error(row, f"{column.iloc[row]} is out of range for a {f.type}", f.name)
        return pa.array(numbers.astype("Int64"), type=pa.int64())
    return pa.array(numbers.astype("float64"), type=pa.float64(), from_pandas=True)


class TypedColumns:
    """The converted blocks of one dataset, column by column; `table()` gives them as one Arrow table,
    which `typed_frame` makes the DataFrame."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.chunks: dict[str, list[pa.Array]] = {f.name: [] for f in schema.fields}
        self.n_rows = 0

    def add(self, block: dict[str, pa.Array]) -> None:
        for f in self.schema.fields:
            values = block[f.name]
            if is_categorical_column(f, self.schema.dataset_type):
                values = pc.dictionary_encode(values)
            self.chunks[f.name].append(values)
        self.n_rows += len(next(iter(block.values()))) if block else 0

    def table(self) -> pa.Table:
        """The blocks as one Arrow table (dictionary columns sharing one dictionary per column); the blocks
        are handed over, column by column, so that a column is not held twice."""
        arrays = {}
        for f in self.schema.fields:
            chunks = self.chunks.pop(f.name)
            if is_categorical_column(f, self.schema.dataset_type):
                if not chunks:
                    chunks = [pa.array([], pa.dictionary(pa.int32(), pa.string()))]
                arrays[f.name] = pa.chunked_array(chunks).unify_dictionaries()
            else:
                arrays[f.name] = pa.chunked_array(chunks, type=arrow_type(f))
        return pa.table(arrays)


def shares_one_dictionary(column: pa.ChunkedArray) -> bool:
    """Whether every chunk of a dictionary column holds the same dictionary (the same buffers, as after
    `unify_dictionaries`): unifying again would hash the whole dictionary once per chunk."""
    if not column.num_chunks:
        return True
    first = [b.address if b is not None else None for b in column.chunk(0).dictionary.buffers()]
    return all([b.address if b is not None else None for b in chunk.dictionary.buffers()] == first
               for chunk in column.chunks[1:])


def categorical_of(column: pa.ChunkedArray) -> pd.Series:
    """A dictionary column as a pandas Categorical: its indices are the codes (no string is looked up;
    Arrow's own conversion would hash the dictionary once per chunk)."""
    if not column.num_chunks:
        return pd.Series(pd.Categorical([], categories=pd.Index([], dtype="str")))
    if not shares_one_dictionary(column):
        column = column.unify_dictionaries()
    codes = np.concatenate([pc.fill_null(chunk.indices, -1).to_numpy().astype(np.int32, copy=False)
                            for chunk in column.chunks])
    categories = pd.Index(column.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object), dtype="str")
    return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories)))


def typed_frame(table: pa.Table, schema: Schema) -> pd.DataFrame:
    """The DataFrame of an Arrow table of typed columns (see the module docstring for the dtypes)."""
    out = {}
    for f in schema.fields:
        column = table.column(f.name)
        if is_categorical_column(f, schema.dataset_type):
            if not pa.types.is_dictionary(column.type):
                column = pc.dictionary_encode(column)
            out[f.name] = categorical_of(column)
        elif f.type == "string":
            out[f.name] = column.to_pandas().astype("string")
        elif f.type == "boolean":
            out[f.name] = column.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        elif f.type in ("int", "long"):
            dtype = "Int64" if f.nullable else "int64"
            out[f.name] = column.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).astype(dtype)
        else:
            out[f.name] = column.to_pandas().astype("float64")
    return pd.DataFrame(out)


def concat_typed(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several typed DataFrames of one dataset, one after another: a column that is a Categorical
    in the first frame stays one, its categories the first frame's followed by the ids the others add (its
    codes kept; pandas' concat would fall back to a column of Python objects when the categories differ)."""
    first = frames[0]
    out = {}
    for name in first.columns:
        parts = [f[name] if name in f.columns else pd.Series([None] * len(f), dtype=object) for f in frames]
        if isinstance(first[name].dtype, pd.CategoricalDtype):
            out[name] = _concat_categorical(parts)
        else:
            out[name] = pd.concat([p.reset_index(drop=True) for p in parts], ignore_index=True)
    return pd.DataFrame(out)


def _concat_categorical(parts: list[pd.Series]) -> pd.Series:
    categories = pd.Index([], dtype=object)
    codes = []
    for part in parts:
        values = pd.Categorical(part if isinstance(part.dtype, pd.CategoricalDtype) else part.astype(object))
        own = pd.Index(np.asarray(values.categories, dtype=object), dtype=object)
        categories = categories.append(own.difference(categories, sort=False))
        position = categories.get_indexer(own)
        part_codes = np.asarray(values.codes)
        codes.append(np.where(part_codes >= 0, position[np.maximum(part_codes, 0)] if len(position) else -1, -1))
    dtype = pd.CategoricalDtype(pd.Index(np.asarray(categories, dtype=object), dtype="str"))
    return pd.Series(pd.Categorical.from_codes(np.concatenate(codes).astype(np.int32), dtype=dtype))
