"""Read a dataset file of either format Personalize imports take: CSV, or Parquet (by its suffix)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from personalize_torch.data.block_conversion import typed_frame
from personalize_torch.data.csv_import import read_csv_table
from personalize_torch.data.parquet_import import read_parquet_table
from personalize_torch.data.schema import Schema

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_dataset_file(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None
                      ) -> tuple[pd.DataFrame, Schema]:
    """The typed DataFrame and schema of one Interactions / Items / Users file (CSV or Parquet)."""
    table, schema = read_dataset_table(path, dataset_type, schema)
    return typed_frame(table, schema), schema


def read_dataset_table(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None
                       ) -> tuple[pa.Table, Schema]:
    """The typed columns of one file as an Arrow table (dictionary-encoded where the DataFrame has a
    Categorical), and its schema."""
    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_table(path, dataset_type, schema)
    return read_csv_table(path, dataset_type, schema)
