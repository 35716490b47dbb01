"""Import Personalize-format CSV files: read in blocks, check against the schema, convert types.

Validation happens here, once: every problem is reported as an InputError naming the file, the line
(the header is line 1) and the column. The file is streamed through Arrow's CSV reader in blocks, so the
memory an import needs is that of the typed columns, not of the text; each block is checked and typed as
it arrives (`block_conversion`), and a bad value stops the import at its block. Code downstream may
trust the DataFrames this returns: ids are Categoricals of strings, TIMESTAMP / CREATION_TIMESTAMP int64
epoch seconds, numeric fields float64 or int64, and empty cells are missing values (see
`block_conversion` for every dtype).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from personalize_torch.data.block_conversion import MAX_ID_LENGTH, TypedColumns, convert_block, typed_frame
from personalize_torch.data.file_schema import file_schema
from personalize_torch.data.schema import Schema
from personalize_torch.errors import InputError

__all__ = ["MAX_ID_LENGTH", "line_of_row", "read_csv_table", "read_dataset_csv", "read_header", "row_error"]

BLOCK_BYTES = 16 << 20
PROGRESS_MIN_BYTES = 256 << 20   # a progress bar on stderr for files at least this large
SAMPLE_ROWS = 1000               # rows read to infer a schema when none is given


def read_header(path: Path) -> list[str]:
    if not path.exists():
        raise InputError("file not found", file=str(path))
    if path.stat().st_size == 0:
        raise InputError("file is empty; expected a header row and data rows", file=str(path))
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            header = next(csv.reader(fh), [])
        except UnicodeDecodeError:      # text is decoded a chunk at a time: the bad byte may be on a later line
            raise _utf8_error(path) from None
    header = [h.strip() for h in header]
    if not any(header):
        raise InputError("no header row", file=str(path), line=1)
    for i, name in enumerate(header):
        if not name:
            raise InputError(f"column {i + 1} of the header has no name", file=str(path), line=1)
        if name in header[:i]:
            raise InputError("duplicate column in the header", file=str(path), line=1, column=name)
    return header


def read_dataset_csv(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None,
                     progress: bool | None = None) -> tuple[pd.DataFrame, Schema]:
    """Read one Interactions / Items / Users CSV; return the typed DataFrame and its schema. `progress`:
    a progress bar on stderr (default: for files of PROGRESS_MIN_BYTES or more)."""
    table, schema = read_csv_table(path, dataset_type, schema, progress)
    return typed_frame(table, schema), schema


def read_csv_table(path: str | Path, dataset_type: str, schema: Schema | str | Path | None = None,
                   progress: bool | None = None) -> tuple[pa.Table, Schema]:
    """As `read_dataset_csv`, the typed columns as an Arrow table (see `TypedColumns.table`)."""
    path = Path(path)
    header = read_header(path)
    schema = file_schema(path, dataset_type, schema, header, lambda: _sample_strings(path, header), "header")
    if progress is None:
        progress = path.stat().st_size >= PROGRESS_MIN_BYTES
    typed = TypedColumns(schema)
    for raw, first_row in _raw_blocks(path, header, progress):
        def block_error(row: int, message: str, column: str, first_row=first_row) -> InputError:
            return row_error(path, first_row + row, message, column)

        typed.add(convert_block({name: raw.column(name) for name in header}, raw.num_rows, schema, block_error))
    if typed.n_rows == 0:
        raise InputError("no data rows after the header", file=str(path), line=2)
    return typed.table(), schema


def _sample_strings(path: Path, header: list[str]) -> pd.DataFrame:
    """The first SAMPLE_ROWS data rows as strings (empty cells missing), to infer a schema from."""
    try:
        sample = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig",
                             nrows=SAMPLE_ROWS)
    except (pd.errors.ParserError, UnicodeDecodeError):
        sample = pd.DataFrame(columns=header, dtype=str)    # the full read names the bad line
    sample.columns = header[:len(sample.columns)]
    return sample.reindex(columns=header)


class _CountingFile:
    """A binary file that advances a progress bar by the bytes read."""

    def __init__(self, path: Path, bar):
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close(), as Arrow closes a file it reads
        self._bar = bar
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._bar.update(len(data))
        return data

    def close(self) -> None:
        self._fh.close()
        self._bar.close()
        self.closed = True


def _raw_blocks(path: Path, header: list[str], progress: bool):
    """(block of string columns, index of its first data row) for each block of the file."""
    source = str(path)
    if progress:
        from tqdm import tqdm

        source = _CountingFile(path, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                          desc=f"importing {path.name}", file=sys.stderr))
    read_options = pa_csv.ReadOptions(column_names=header, skip_rows=1, block_size=BLOCK_BYTES)
    parse_options = pa_csv.ParseOptions(newlines_in_values=True)
    convert_options = pa_csv.ConvertOptions(column_types={name: pa.string() for name in header},
                                            strings_can_be_null=True, null_values=[""])
    first_row = 0
    try:
        reader = pa_csv.open_csv(source, read_options, parse_options, convert_options)
        for block in reader:
            yield block, first_row
            first_row += block.num_rows
    except pa.ArrowInvalid as err:
        raise _read_error(path, header, err) from None
    finally:
        if progress:
            source.close()


def _read_error(path: Path, header: list[str], err: pa.ArrowInvalid) -> InputError:
    """The InputError for what Arrow's reader refused: text that is not UTF-8, or a malformed row (found by
    reading the file again up to it, which only a failed import pays for)."""
    text = str(err)
    if "UTF8" in text or "UTF-8" in text:
        return _utf8_error(path)
    if "Could not skip initial" in text:     # the header is the whole file
        return InputError("no data rows after the header", file=str(path), line=2)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            start = reader.line_num + 1
            for record in reader:
                if record and len(record) != len(header):
                    return InputError(f"malformed CSV: expected {len(header)} fields, saw {len(record)}",
                                      file=str(path), line=start)
                start = reader.line_num + 1
    except UnicodeDecodeError:      # not UTF-8 further on, which Arrow had not come to yet
        return _utf8_error(path)
    return InputError(f"malformed CSV: {text.strip()}", file=str(path))


def _utf8_error(path: Path) -> InputError:
    line, offset = 1, 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return InputError(f"not UTF-8 text ({err.reason} at byte {offset + err.start})", file=str(path),
                                  line=line)
            line += 1
            offset += len(raw)
    return InputError("not UTF-8 text", file=str(path))


def line_of_row(path: Path, row: int) -> int:
    """The line in the file where data row `row` (0-based, blank lines skipped) starts.

    Only called to report an error, so the success path never pays for this scan. (Text that is not UTF-8
    after the row is read as replacement characters: it does not move lines.)
    """
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
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
